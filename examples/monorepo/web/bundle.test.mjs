import { test } from "node:test";
import assert from "node:assert";
import { bundle } from "./bundle.mjs";
import { formatCents } from "./src/format.js";

test("formatCents agrees with lib/money", () => {
  assert.strictEqual(formatCents(1234, "EUR"), "12.34 EUR");
  assert.strictEqual(formatCents(5, "USD"), "0.05 USD");
  assert.strictEqual(formatCents(-50, "EUR"), "-0.50 EUR");
});

test("bundle puts dependencies first and strips module syntax", () => {
  const files = {
    "src/a.js": 'import { b } from "./b.js";\nexport const a = () => b() + 1;\n',
    "src/b.js": "export function b() { return 1; }\n",
  };
  const out = bundle("src/a.js", (p) => files[p]);
  assert.ok(out.indexOf("// src/b.js") < out.indexOf("// src/a.js"), out);
  assert.doesNotMatch(out, /^(import|export) /m);
  assert.strictEqual(new Function(out.replace("})();", "return a();})();").replace("(() =>", "return (() =>"))(), 2);
});

test("the real front end bundles and runs", () => {
  const out = bundle("src/app.js");
  let started = false;
  const doc = { getElementById: () => ({ addEventListener: () => { started = true; } }) };
  new Function("document", out)(doc);
  assert.ok(started, "app.js did not attach its form handler");
});
