import { formatCents } from "./format.js";

// The order form: posts the order to the orders service and shows the
// total it answers, with the subtotal computed here for comparison.
export function start(doc) {
  const form = doc.getElementById("order");
  const out = doc.getElementById("total");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const quantity = Number(form.quantity.value);
    const unit = Number(form.unit_cents.value);
    const order = {
      id: `web-${Date.now()}`,
      customer: form.customer.value,
      currency: "EUR",
      items: [{ sku: form.sku.value, quantity, unit_cents: unit }],
    };
    const resp = await fetch("/orders", { method: "POST", body: JSON.stringify(order) });
    const body = await resp.json();
    out.textContent = resp.ok
      ? `subtotal ${formatCents(quantity * unit, "EUR")}, total ${body.total}`
      : `error: ${body.error}`;
  });
}

if (typeof document !== "undefined") start(document);
