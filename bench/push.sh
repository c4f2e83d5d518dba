#!/usr/bin/env bash
# Pushing an image whose layers the registry already has (issue 5): a 100 MB
# image is built and pushed to the distribution registry on 127.0.0.1, then
# built again from scratch (its result purged, so the layer is rebuilt —
# reproducibly, to the same digest) and pushed again. The registry's access
# log counts blob uploads (POST/PUT/PATCH under /blobs/uploads/) for each push.
#
#   bash bench/push.sh            # SIZE_MB=100
#
# Needs docker-registry (apt-get install docker-registry). MC=PATH uses a
# prebuilt mc. The table goes to stdout, progress to stderr.
set -euo pipefail
export LC_ALL=C
SIZE_MB=${SIZE_MB:-100}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }
command -v docker-registry >/dev/null || die "docker-registry not found (apt-get install docker-registry)"

TMP=$(mktemp -d "$BENCH_TMP/mc-push.XXXXXX")
REG_PID=
cleanup() {
	[[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z ${MC:-} ]]; then
	note "building mc"
	(cd "$ROOT" && go build -o "$TMP/mc" ./cmd/mc)
	MC=$TMP/mc
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/registry.yml" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $TMP/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$TMP/registry.yml" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || die "registry did not start: $(tail -3 "$TMP/registry.log")"

mkdir -p "$TMP/ws"
cat >"$TMP/ws/WORKSPACE.mc" <<'MC'
workspace(name = "push")
MC
cat >"$TMP/ws/BUILD.mc" <<'MC'
stage(name = "blob", cmd = "head -c $((SIZE << 20)) /dev/urandom > big.bin", outs = ["big.bin"], env = {"SIZE": "SIZE_MB"})
image(name = "img", files = {"/big.bin": ":big.bin"}, repository = "bench/big")
MC
sed -i "s/SIZE_MB/$SIZE_MB/" "$TMP/ws/BUILD.mc"
uploads() { grep -cE '"(POST|PUT|PATCH) /v2/[^ ]*/blobs/uploads/' "$TMP/registry.log" || true; }
now() { echo "$EPOCHREALTIME"; }

cd "$TMP/ws"
"$MC" build --cache-dir "$TMP/c" //:blob 2>/dev/null
b0=$(uploads); t0=$(now)
"$MC" build --cache-dir "$TMP/c" --push --registry "127.0.0.1:$port" //:img 2>"$TMP/push1.log" || die "push 1: $(tail -3 "$TMP/push1.log")"
t1=$(now); b1=$(uploads)
"$MC" cache purge --cache-dir "$TMP/c" //:img >/dev/null
t2=$(now)
"$MC" build --cache-dir "$TMP/c" --push --registry "127.0.0.1:$port" //:img 2>"$TMP/push2.log" || die "push 2: $(tail -3 "$TMP/push2.log")"
t3=$(now); b2=$(uploads)
grep -q '^Build: 1 built' "$TMP/push2.log" || die "the image was not rebuilt: $(grep '^Build' "$TMP/push2.log")"
d1=$(grep -o 'sha256:[0-9a-f]\{64\}' "$TMP/push1.log" | head -1)
d2=$(grep -o 'sha256:[0-9a-f]\{64\}' "$TMP/push2.log" | head -1)
[[ $d1 == "$d2" ]] || die "the rebuilt image has another digest: $d1 vs $d2"

printf '\npush of a %d MB image to docker-registry on 127.0.0.1 (digest %s)\n\n' "$SIZE_MB" "${d1:7:12}"
printf '%-52s %10s %14s\n' "" "seconds" "blob uploads"
printf '%-52s %10.2f %14d\n' "build + first push" "$(echo "$t1 - $t0" | bc -l)" $((b1 - b0))
printf '%-52s %10.2f %14d\n' "rebuild from scratch (same digest) + push again" "$(echo "$t3 - $t2" | bc -l)" $((b2 - b1))
verdict=MISS
((b2 - b1 == 0)) && verdict=PASS
printf '\nno layer re-uploaded: %s\n' "$verdict"
