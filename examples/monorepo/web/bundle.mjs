// A bundler of a few lines, with Node alone (no registry): the modules of
// src/, in dependency order, become one script. Each module's imports are
// dropped (its dependencies come first in the same scope) and its exports
// become plain declarations. Good for a small front end without cycles.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

export function bundle(entry, read = (p) => readFileSync(p, "utf8")) {
  const order = [];
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = read(file);
    for (const m of src.matchAll(/^import .* from "(\.[^"]+)";$/gm)) {
      visit(normalize(join(dirname(file), m[1])));
    }
    order.push([file, src]);
  };
  visit(normalize(entry));
  const body = order
    .map(([file, src]) =>
      `// ${file}\n` + src.replace(/^import .*;\n/gm, "").replace(/^export (function|const|let|class) /gm, "$1 "),
    )
    .join("\n");
  return `(() => {\n"use strict";\n${body}})();\n`;
}

if (process.argv[1] && process.argv[1].endsWith("bundle.mjs")) {
  const [entry, out] = process.argv.slice(2);
  writeFileSync(out, bundle(entry));
}
