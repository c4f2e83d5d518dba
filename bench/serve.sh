#!/usr/bin/env bash
# mc serve against mc build on a one-file change (issue 18, Speed): a push
# that changes one file of a workspace the server has already built must
# finish in under 2x the time `mc build` takes for the same change in a
# plain checkout, on the same machine.
#
#   bash bench/serve.sh                  # 1000 packages x 10 stages, -j2
#   PACKAGES=100 bash bench/serve.sh     # quick run
#
# The workspace is bench/gen's (as bench/run.sh), committed to a local bare
# repository: the server's "remote". mc serve (the real binary) listens on
# 127.0.0.1; bench/servebench sends it push webhooks signed as GitHub signs
# them and waits for each run. The server builds the first commit (cold),
# then the change, pushed to the default branch (so the run has its deploy
# preflight and deploy step, as a real push to main does); push->finished
# is timed from the delivery to the end of the run. The plain checkout gets
# a copy of the server's cache and a null build (a developer's warm tree),
# then the same change: `mc build //...` is timed. Output: both times and
# the ratio. With KEEP=1, the server's run log with its timestamps
# (where the time went) is printed from its database.
#
# Environment: PACKAGES=1000 STAGES=10 JOBS=2 SEED=1 MC=PATH (prebuilt mc)
# BRANCH=main (the branch pushed; another one skips the deploy step)
# KEEP=1 keeps the temporary directory; BENCH_TMP=DIR where it goes.
set -euo pipefail
export LC_ALL=C
PACKAGES=${PACKAGES:-1000}
STAGES=${STAGES:-10}
JOBS=${JOBS:-2}
SEED=${SEED:-1}
BRANCH=${BRANCH:-main}
KEEP=${KEEP:-0}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }
command -v bwrap >/dev/null || die "bubblewrap not found (apt-get install bubblewrap): mc serve requires a sandbox"

TMP=$(mktemp -d "$BENCH_TMP/mc-serve.XXXXXX")
BIN=$TMP/bin LOGS=$TMP/logs
mkdir -p "$BIN" "$LOGS"
SRV_PID=
cleanup() {
	if [[ -n $SRV_PID ]]; then kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null || true; fi
	if [[ $KEEP == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

cd "$ROOT"
note "building mc, bench/gen, bench/servebench"
if [[ -n ${MC:-} ]]; then cp "$MC" "$BIN/mc"; else go build -o "$BIN/mc" ./cmd/mc; fi
go build -o "$BIN/gen" ./bench/gen
go build -o "$BIN/servebench" ./bench/servebench

stamp() { printf -v "$1" '%s' "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
git_() { git -c user.name=bench -c user.email=bench@example.com -c init.defaultBranch=main "$@"; }

# --- the repository and the plain checkout ---------------------------------
"$BIN/gen" -out "$TMP/src" -packages "$PACKAGES" -stages "$STAGES" -seed "$SEED"
MID=$(printf 'pkg%04d' $((PACKAGES / 2)))
[[ -d $TMP/src/$MID ]] || MID=$(cd "$TMP/src" && ls -d pkg* | sed -n "$((PACKAGES / 2 + 1))p")
TOUCH=${TOUCH:-$MID/src/$(printf 's%02d' $((STAGES > 5 ? 5 : STAGES - 1))).txt}
[[ -f $TMP/src/$TOUCH ]] || die "TOUCH=$TOUCH does not exist in the generated tree"
git_ init -q "$TMP/src"
git_ -C "$TMP/src" add -A
git_ -C "$TMP/src" commit -q -m "generated workspace"
git_ init -q --bare "$TMP/repo.git"
git_ -C "$TMP/src" push -q "$TMP/repo.git" HEAD:"$BRANCH"
[[ $BRANCH == main ]] || git_ -C "$TMP/src" push -q "$TMP/repo.git" HEAD:main
BASE=$(git -C "$TMP/src" rev-parse HEAD)
git_ clone -q "$TMP/repo.git" "$TMP/plain"
git_ -C "$TMP/plain" checkout -q "$BASE"

# --- mc serve --------------------------------------------------------------
SECRET=bench-secret-$RANDOM$RANDOM
export XDG_CACHE_HOME=$TMP/cache-serve
MC_WEBHOOK_SECRET=$SECRET "$BIN/mc" serve --listen 127.0.0.1:0 --addr-file "$TMP/addr" --data-dir "$TMP/data" \
	--stage-network=host --build-arg=-j"$JOBS" >"$LOGS/serve.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 200); do [[ -s $TMP/addr ]] && break; sleep 0.05; done
[[ -s $TMP/addr ]] || { cat "$LOGS/serve.log" >&2; die "mc serve did not start"; }
URL=http://$(<"$TMP/addr")
push() { "$BIN/servebench" -url "$URL" -secret "$SECRET" -clone-url "file://$TMP/repo.git" -branch "$BRANCH" -sha "$1"; }

note "server: cold build of $PACKAGES x $STAGES (push of the first commit)"
push "$BASE" | tee "$LOGS/push-cold.txt" >&2

note "plain checkout: a copy of the server's cache (its results, not its stat cache), then a null build"
# The results are the same either way (a cold build of its own would take as
# long again); the plain checkout's path is new to the copied stat cache, so
# the null build hashes its sources once, as a developer's tree is warm.
cp -a "$TMP/cache-serve" "$TMP/cache-plain"
stamp t0
(cd "$TMP/plain" && XDG_CACHE_HOME=$TMP/cache-plain "$BIN/mc" build -j"$JOBS" //... >"$LOGS/plain-null.log" 2>&1) ||
	{ tail -20 "$LOGS/plain-null.log" >&2; die "plain build failed"; }
stamp t1
note "plain first build (all cached): $(secs "$t0" "$t1") s"
(cd "$TMP/plain" && XDG_CACHE_HOME=$TMP/cache-plain "$BIN/mc" build -j"$JOBS" //... >"$LOGS/plain-null2.log" 2>&1)

# --- the change ----------------------------------------------------------------
echo "changed $RANDOM" >>"$TMP/src/$TOUCH"
git_ -C "$TMP/src" commit -q -am "change $TOUCH"
CHANGE=$(git -C "$TMP/src" rev-parse HEAD)
git_ -C "$TMP/src" push -q "$TMP/repo.git" HEAD:"$BRANCH"

note "server: push of the change to $TOUCH"
push "$CHANGE" | tee "$LOGS/push-change.txt" >&2
SERVE=$(awk '{ print $4 }' "$LOGS/push-change.txt")

note "plain checkout: the same change, mc build //..."
git_ -C "$TMP/plain" fetch -q origin
git_ -C "$TMP/plain" checkout -q "$CHANGE"
stamp t0
(cd "$TMP/plain" && XDG_CACHE_HOME=$TMP/cache-plain "$BIN/mc" build -j"$JOBS" //... >"$LOGS/plain-change.log" 2>&1) ||
	{ tail -20 "$LOGS/plain-change.log" >&2; die "plain build of the change failed"; }
stamp t1
PLAIN=$(secs "$t0" "$t1")
RATIO=$(awk -v a="$SERVE" -v b="$PLAIN" 'BEGIN { printf "%.2f", a / b }')

printf '%-44s %10s\n' "one-file change, $PACKAGES x $STAGES, -j$JOBS" "seconds"
printf '%-44s %10s\n' "mc serve: push -> run finished" "$SERVE"
printf '%-44s %10s\n' "mc build //... in a plain checkout" "$PLAIN"
printf '%-44s %10s   (target < 2)\n' "ratio" "$RATIO"
if [[ $KEEP == 1 ]]; then
	note "the change's run, line by line (seconds since it started):"
	python3 - "$TMP/data/server.db" >&2 <<'PY'
import json, sqlite3, sys
from datetime import datetime
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT data FROM events WHERE run = 2 AND label = '' ORDER BY seq").fetchall()
t0 = None
for (data,) in rows:
    e = json.loads(data)
    t = datetime.fromisoformat(e["time"].replace("Z", "+00:00")[:26] + "+00:00")
    t0 = t0 or t
    print("%7.3f %s %s" % ((t - t0).total_seconds(), e["type"], e.get("line", "")[:120]))
PY
fi
