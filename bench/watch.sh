#!/usr/bin/env bash
# Measures mc watch on the generated monorepo of bench/run.sh: the latency
# from a source file saved to its stage starting (target: <= 50 ms), over
# N edits of one source file. See bench/README.md.
#
#   bash bench/watch.sh                     # 1000 packages x 10 stages, 20 edits
#   PACKAGES=100 EDITS=5 bash bench/watch.sh  # quick run
set -euo pipefail
export LC_ALL=C # '.' as the decimal point in EPOCHREALTIME, printf and sort

usage() {
	cat <<'EOF'
usage: bash bench/watch.sh [--packages N] [--stages N] [--edits N] [--jobs N] [--seed N] [--keep] [--strict]

Environment (flags win): PACKAGES=1000 STAGES=10 EDITS=20 JOBS=2 SEED=1 KEEP=0 STRICT=0
  MC=PATH         use this mc binary instead of building ./cmd/mc
  BENCH_TMP=DIR   where the work tree goes (default: $TMPDIR or /tmp)
  TOUCH=PATH      workspace-relative source file edited (default: the middle
                  package's s05 source, as bench/run.sh)
  STRICT=1        exit 1 when the target is missed
  REUSE=DIR       the directory a KEEP=1 run kept: its tree and cache are
                  used again, without generating or building them (the
                  cold build of 10,000 stages takes minutes)
EOF
}

PACKAGES=${PACKAGES:-1000}
STAGES=${STAGES:-10}
EDITS=${EDITS:-20}
JOBS=${JOBS:-2}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
TARGET_MS=50

while (($#)); do
	case $1 in
	--packages) PACKAGES=${2:?"$1 needs a value"}; shift 2 ;;
	--stages) STAGES=${2:?"$1 needs a value"}; shift 2 ;;
	--edits) EDITS=${2:?"$1 needs a value"}; shift 2 ;;
	-j | --jobs) JOBS=${2:?"$1 needs a value"}; shift 2 ;;
	--seed) SEED=${2:?"$1 needs a value"}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--strict) STRICT=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

for v in PACKAGES STAGES EDITS JOBS SEED; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 is needed (EPOCHREALTIME)"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v go >/dev/null || die "go not found"

TMP=$(mktemp -d "$BENCH_TMP/mc-watch-bench.XXXXXX")
BIN=$TMP/bin LOGS=$TMP/logs
mkdir -p "$BIN" "$LOGS"
WATCH_PID=
cleanup() {
	if [[ -n $WATCH_PID ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
		kill -INT "$WATCH_PID" 2>/dev/null || true
		wait "$WATCH_PID" 2>/dev/null || true
	fi
	if [[ $KEEP == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

cd "$ROOT"
note "building bench/gen"
go build -o "$BIN/gen" ./bench/gen
if [[ -n ${MC:-} ]]; then
	[[ -x $MC ]] || die "MC=$MC is not executable"
	cp "$MC" "$BIN/mc"
else
	note "building mc"
	go build -o "$BIN/mc" ./cmd/mc
fi

if [[ -n ${REUSE:-} ]]; then
	[[ -d $REUSE/tree && -d $REUSE/xdg-cache ]] || die "REUSE=$REUSE holds no tree/ and xdg-cache/ of a KEEP=1 run"
	mv "$REUSE/tree" "$REUSE/xdg-cache" "$TMP/"
	note "reusing the tree and cache of $REUSE (moved to $TMP)"
else
	"$BIN/gen" -out "$TMP/tree" -packages "$PACKAGES" -stages "$STAGES" -seed "$SEED"
fi
NSTAGES=$((PACKAGES * STAGES))
MID=$(printf 'pkg%04d' $((PACKAGES / 2)))
STAGE=$(printf 's%02d' $((STAGES > 5 ? 5 : STAGES - 1)))
TOUCH=${TOUCH:-$MID/src/$STAGE.txt}
[[ -f $TMP/tree/$TOUCH ]] || die "TOUCH=$TOUCH does not exist in the generated tree"
LABEL=//$(sed -E 's|^(.*)/src/(s[0-9]+)\.txt$|\1:\2|' <<<"$TOUCH")
export XDG_CACHE_HOME=$TMP/xdg-cache

cd "$TMP/tree"
if [[ -z ${REUSE:-} ]]; then
	note "mc: cold build of $NSTAGES stages at -j$JOBS (before watching)"
	"$BIN/mc" build -j "$JOBS" //... >"$LOGS/cold.log" 2>&1 || { tail -n 20 "$LOGS/cold.log" >&2; die "the cold build failed"; }
fi

STDERR=$LOGS/watch.log FIFO=$TMP/events.fifo
mkfifo "$FIFO"
t0=$EPOCHREALTIME
# Only the events the script waits for reach it (bash reads a pipe a byte
# at a time: the 10,000 events of the first build would hold mc back).
"$BIN/mc" watch -v -j "$JOBS" --output=json //... \
	> >(grep --line-buffered -E '"type":"(stage_started|build_finished)"' >"$FIFO") 2>"$STDERR" &
WATCH_PID=$!
# The event stream is read as it comes, blocking: polling files would
# take the CPU the measured process needs on a small machine.
exec 3<"$FIFO"

# read_until GLOB: reads events until one matches GLOB; LINE holds it.
LINE=
read_until() {
	while IFS= read -r -t 600 -u 3 LINE; do
		# shellcheck disable=SC2053
		[[ $LINE == $1 ]] && return 0
	done
	tail -n 20 "$STDERR" >&2
	die "no event matching $1 (mc watch ended, or 600 s passed)"
}
FINISHED='*"type":"build_finished"*'
STARTED='*"type":"stage_started"*"label":"'$LABEL'"*'

read_until "$FINISHED"
t1=$EPOCHREALTIME
START_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
note "mc watch: evaluated and null-built $NSTAGES stages in $START_S s; editing $TOUCH $EDITS times"

# Each edit saves the source and waits for the stage's stage_started event
# and for the build to end. Odd edits append a line in place; even ones
# save as editors do: a new file written beside it and renamed over it
# (its package's globs are then checked too).
LAT=() LAT_APPEND=() LAT_RENAME=()
for i in $(seq "$EDITS"); do
	# Edits a user makes are seconds apart; this waits a little so that
	# the last build's tail (mc-out, the stat cache) is over.
	sleep 0.3
	if ((i % 2)); then
		printf 'watch edit %d\n' "$i" >>"$TOUCH"
	else
		cp "$TOUCH" "$TOUCH.swp"
		printf 'watch edit %d\n' "$i" >>"$TOUCH.swp"
		mv "$TOUCH.swp" "$TOUCH"
	fi
	# The save's time is the file's ctime, which the write (or the rename)
	# set: the clock of a script that forks mv on a loaded machine would
	# count mv's start-up against mc. (The kernel's coarse clock makes it
	# up to a tick early, which only adds to the latency measured.)
	saved=$(stat -c %.9Z "$TOUCH")
	read_until "$STARTED"
	ts=$(sed -E 's/.*"time":"([^"]+)".*/\1/' <<<"$LINE")
	read_until "$FINISHED"
	at=$(date -d "$ts" +%s.%N)
	LAT+=("$(awk -v a="$saved" -v b="$at" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
	if ((i % 2)); then LAT_APPEND+=("${LAT[-1]}"); else LAT_RENAME+=("${LAT[-1]}"); fi
done

kill -INT "$WATCH_PID"
cat <&3 >/dev/null # the rest of the stream, so that mc is not blocked writing it
rc=0
wait "$WATCH_PID" || rc=$?
WATCH_PID=
exec 3<&-
[[ $rc == 0 ]] || die "mc watch exited $rc after SIGINT, want 0"
grep -q 'FAILED' "$STDERR" && die "a stage failed under mc watch (see $STDERR)"
mapfile -t INTERNAL < <(grep -E '^mc watch: first stage started' "$STDERR" | sed -E 's/.*started ([0-9.]+) ms.*/\1/')
((${#INTERNAL[@]} == EDITS)) || die "mc reported ${#INTERNAL[@]} latencies for $EDITS edits (see $STDERR)"

stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f %.1f", m, v[NR] }'; }
read -r MED MAX <<<"$(stats "${LAT[@]}")"
read -r IMED IMAX <<<"$(stats "${INTERNAL[@]}")"
read -r AMED AMAX <<<"$(stats "${LAT_APPEND[@]}")"
# mc -v's breakdown: from the first inotify event to the build (debounce,
# planning), to build_started (the build's setup), to the stage starting.
seg() { grep -E '^mc watch: heard -> build' "$STDERR" | awk -v f="$1" '{ print $f }'; }
read -r HMED HMAX <<<"$(stats $(seg 6))"
read -r BMED BMAX <<<"$(stats $(seg 10))"
read -r SMED SMAX <<<"$(stats $(seg 15))"
RMED=- RMAX=-
((${#LAT_RENAME[@]} == 0)) || read -r RMED RMAX <<<"$(stats "${LAT_RENAME[@]}")"
if awk -v m="$MED" -v t="$TARGET_MS" 'BEGIN { exit !(m <= t) }'; then V=PASS; else V=MISS; fi

row() { printf '%-34s %10s %10s  %-22s %s\n' "$@"; }
echo
echo "mc watch: $PACKAGES packages x $STAGES stages = $NSTAGES stages, -j$JOBS, seed $SEED, $EDITS edits of $TOUCH"
echo "$(nproc) cores, $(uname -sr), tree on $(stat -f -c %T "$TMP"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
row metric "median" "max" target verdict
row "save -> $LABEL started (ms)" "$MED" "$MAX" "median <= $TARGET_MS ms" "$V"
row "  of which appended in place" "$AMED" "$AMAX" "-" "-"
row "  of which written and renamed" "$RMED" "$RMAX" "-" "-"
row "  as mc measures it (ms)" "$IMED" "$IMAX" "-" "-"
row "  mc: heard -> build (ms)" "$HMED" "$HMAX" "10 ms of it debounce" "-"
row "  mc: build -> build_started (ms)" "$BMED" "$BMAX" "-" "-"
row "  mc: build_started -> started (ms)" "$SMED" "$SMAX" "-" "-"
row "start: evaluate + null build (s)" "$START_S" "-" "-" "-"
echo
echo "save = the source's ctime after the append or the rename; started = the stage_started event's time."
echo "mc's own figure is from the same ctime, read when it plans the build, to the event. Each edit: ${LAT[*]}"
if [[ $STRICT == 1 && $V == MISS ]]; then
	die "the target is missed"
fi
