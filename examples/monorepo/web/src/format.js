// Formats cents the way lib/money does on the server: "12.34 EUR".
export function formatCents(cents, currency) {
  const sign = cents < 0 ? "-" : "";
  const c = Math.abs(cents);
  return `${sign}${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")} ${currency}`;
}
