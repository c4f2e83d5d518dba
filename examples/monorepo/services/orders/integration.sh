# Runs inside //services/orders:image (busybox sh and wget, the service).
set -eu
/usr/local/bin/orders -addr=127.0.0.1:8080 &
pid=$!
trap 'kill $pid' EXIT
i=0
until wget -q -O health.json http://127.0.0.1:8080/healthz 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "orders did not answer on :8080"; exit 1; }
  sleep 0.1
done
grep -q '"status":"ok"' health.json
wget -q -O index.html http://127.0.0.1:8080/
grep -q '<script src="/app.js">' index.html
wget -q -O app.js http://127.0.0.1:8080/app.js
grep -q 'function formatCents' app.js
wget -q -O total.json --header 'Content-Type: application/json' \
  --post-data '{"id":"it-1","customer":"ann","currency":"EUR","items":[{"sku":"mug","quantity":3,"unit_cents":250}]}' \
  http://127.0.0.1:8080/orders
grep -q '"total":"9.00 EUR"' total.json
echo "integration: $(cat total.json)"
