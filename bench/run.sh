#!/usr/bin/env bash
# Benchmarks mc against ninja on one generated monorepo and prints a table of
# times, ratios and the targets mc has to meet. See bench/README.md.
#
#   bash bench/run.sh                       # 1000 packages x 10 stages, -j2
#   PACKAGES=100 bash bench/run.sh          # quick run
#   MC_SKIP=1 bash bench/run.sh             # ninja only (mc not needed)
set -euo pipefail
export LC_ALL=C # '.' as the decimal point in EPOCHREALTIME, printf and sort

usage() {
	cat <<'EOF'
usage: bash bench/run.sh [--packages N] [--stages N] [--jobs N] [--seed N] [--mc-skip] [--keep] [--strict]

Environment (flags win): PACKAGES=1000 STAGES=10 JOBS=2 SEED=1 MC_SKIP=0 KEEP=0 STRICT=0
  MC=PATH         use this mc binary instead of building ./cmd/mc
  BENCH_TMP=DIR   where the work trees go (default: $TMPDIR or /tmp)
  TOUCH=PATH      workspace-relative file the incremental test edits
                  (default: the middle package's s05 source)
  STRICT=1        exit 1 when any target is missed
  TIME_BIN=PATH   GNU time for peak RSS (default: /usr/bin/time)
  COLD_ROUNDS=3   cold builds of each tool, in turn (the table gives medians)
  SETTLE=0        do not wait for file creation to be as cheap as usual
                  before the cold builds (bench/fs.sh; SETTLE_MAX=480 s)
EOF
}

PACKAGES=${PACKAGES:-1000}
STAGES=${STAGES:-10}
JOBS=${JOBS:-2}
SEED=${SEED:-1}
MC_SKIP=${MC_SKIP:-0}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}

while (($#)); do
	case $1 in
	--packages) PACKAGES=${2:?"$1 needs a value"}; shift 2 ;;
	--stages) STAGES=${2:?"$1 needs a value"}; shift 2 ;;
	-j | --jobs) JOBS=${2:?"$1 needs a value"}; shift 2 ;;
	--seed) SEED=${2:?"$1 needs a value"}; shift 2 ;;
	--mc-skip) MC_SKIP=1; shift ;;
	--keep) KEEP=1; shift ;;
	--strict) STRICT=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

for v in PACKAGES STAGES JOBS SEED; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive integer, got '${!v}'"
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v ninja >/dev/null || die "ninja not found (Debian: apt-get install ninja-build)"
command -v go >/dev/null || die "go not found"

TMP=$(mktemp -d "$BENCH_TMP/mc-bench.XXXXXX")
LOGS=$TMP/logs BIN=$TMP/bin
mkdir -p "$LOGS" "$BIN"
cleanup() {
	if [[ $KEEP == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# --- timing ---------------------------------------------------------------

# stamp VAR: wall clock in seconds with microseconds, without forking when
# bash has EPOCHREALTIME (5.0+).
stamp() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then
		printf -v "$1" '%s' "$EPOCHREALTIME"
	else
		printf -v "$1" '%s' "$(date +%s.%N)"
	fi
}

# run_timed LOG CMD...: runs CMD with output to $LOGS/LOG.log, sets ELAPSED
# (seconds, 3 decimals) and returns CMD's status.
ELAPSED=
run_timed() {
	local log=$LOGS/$1.log t0 t1 rc=0
	shift
	stamp t0
	"$@" >"$log" 2>&1 || rc=$?
	stamp t1
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	return "$rc"
}

# timed LOG CMD...: run_timed, but a failing CMD ends the benchmark.
timed() {
	local log=$1
	if ! run_timed "$@"; then
		tail -n 20 "$LOGS/$log.log" >&2 || true
		die "'${*:2}' failed (log: $LOGS/$log.log)"
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# peak_rss_mb LOG CMD...: peak RSS of CMD in MB via GNU time, or n/a.
GNU_TIME=
TIME_BIN=${TIME_BIN:-/usr/bin/time}
if [[ -x $TIME_BIN ]] && "$TIME_BIN" -f '%M' -o "$TMP/time-probe" true 2>/dev/null &&
	[[ $(<"$TMP/time-probe") =~ ^[0-9]+$ ]]; then
	GNU_TIME=$TIME_BIN
else
	note "WARNING: no GNU time at $TIME_BIN (Debian: apt-get install time); peak RSS will be n/a"
fi
peak_rss_mb() {
	local log=$1
	shift
	if [[ -z $GNU_TIME ]]; then echo n/a; return; fi
	if ! "$GNU_TIME" -f '%M' -o "$LOGS/$log.rss" "$@" >"$LOGS/$log.log" 2>&1; then
		tail -n 20 "$LOGS/$log.log" >&2 || true
		die "'$*' failed (log: $LOGS/$log.log)"
	fi
	awk '/^[0-9]+$/ { kb = $1 } END { printf "%.1f", kb / 1024 }' "$LOGS/$log.rss"
}

# --- the repository ---------------------------------------------------------

cd "$ROOT"
note "building bench/gen"
go build -o "$BIN/gen" ./bench/gen
if [[ $MC_SKIP != 1 ]]; then
	if [[ -n ${MC:-} ]]; then
		[[ -x $MC ]] || die "MC=$MC is not executable"
		cp "$MC" "$BIN/mc"
	else
		note "building mc"
		go build -o "$BIN/mc" ./cmd/mc || die "mc does not build; MC_SKIP=1 runs the ninja half alone"
	fi
fi

"$BIN/gen" -out "$TMP/src" -packages "$PACKAGES" -stages "$STAGES" -seed "$SEED"
NSTAGES=$((PACKAGES * STAGES))
MID=$(printf 'pkg%04d' $((PACKAGES / 2)))
TOUCH=${TOUCH:-$MID/src/$(printf 's%02d' $((STAGES > 5 ? 5 : STAGES - 1))).txt}
[[ -f $TMP/src/$TOUCH ]] || die "TOUCH=$TOUCH does not exist in the generated tree"
TOUCH_OUT=${TOUCH/\/src\//\/out\/}

# Both tools get their own copy of the same tree, so neither sees the other's
# outputs or bookkeeping.
cp -a "$TMP/src" "$TMP/tree-ninja"
[[ $MC_SKIP == 1 ]] || cp -a "$TMP/src" "$TMP/tree-mc"

# A fixed sample of outputs compared byte for byte: every Kth stage, the last
# one, and the stage whose source the incremental test edits.
SAMPLE=$(awk -v n="$NSTAGES" 'BEGIN { k = int(n / 20); if (k < 1) k = 1 }
	{ last = $1 } (NR - 1) % k == 0 && c < 19 { print $1; c++ } END { print last }' "$TMP/src/edges.txt" |
	sed -E 's|^(pkg[0-9]+):(s[0-9]+)$|\1/out/\2.txt|')
# Plus a few direct dependents of the edited stage, to see edits propagate.
TOUCH_ID=$(sed -E 's|^(pkg[0-9]+)/src/(s[0-9]+)\.txt$|\1:\2|' <<<"$TOUCH")
RDEPS=$(awk -v t="$TOUCH_ID" '{ for (i = 2; i <= NF; i++) if ($i == t && c++ < 5) print $1 }' "$TMP/src/edges.txt" |
	sed -E 's|^(pkg[0-9]+):(s[0-9]+)$|\1/out/\2.txt|')
SAMPLE=$(printf '%s\n' $SAMPLE "$TOUCH_OUT" $RDEPS | sort -u)

# check_ninja_outputs: every sampled ninja output exists and is an md5sum line.
check_ninja_outputs() {
	local f
	for f in $SAMPLE; do
		[[ -f $TMP/tree-ninja/$f ]] || die "ninja did not produce $f"
		grep -Eqx '[0-9a-f]{32}  -' "$TMP/tree-ninja/$f" || die "ninja output $f is not an md5sum line"
	done
}

# snapshot_ninja DIR: copies the sampled ninja outputs to DIR, to compare mc
# against the state ninja had at the same point (before the edits).
snapshot_ninja() {
	local f
	for f in $SAMPLE; do
		mkdir -p "$1/${f%/*}"
		cp "$TMP/tree-ninja/$f" "$1/$f"
	done
}

# check_same_outputs WHEN REF: mc-out holds every output, and the sampled ones
# match the bytes ninja produced under REF.
check_same_outputs() {
	local f n bad=0 ref=$2
	n=$(find "$TMP/tree-mc/mc-out" -path '*/out/s*.txt' 2>/dev/null | wc -l)
	[[ $n -eq $NSTAGES ]] || die "$1: mc-out holds $n stage outputs, want $NSTAGES (mc build //... materializes all of them)"
	for f in $SAMPLE; do
		if ! cmp -s "$ref/$f" "$TMP/tree-mc/mc-out/$f"; then
			note "$1: $f differs: ninja '$(head -c 80 "$ref/$f")' vs mc '$(head -c 80 "$TMP/tree-mc/mc-out/$f" 2>&1)'"
			bad=1
		fi
	done
	[[ $bad == 0 ]] || die "$1: mc and ninja produced different outputs"
	note "$1: $(wc -w <<<"$SAMPLE") sampled outputs identical in mc-out/ and the ninja tree"
}

# --- ninja -------------------------------------------------------------------

run_ninja() { ninja -C "$TMP/tree-ninja" -j "$JOBS"; }

# Cold builds, ninja and mc in turn, COLD_ROUNDS times, each on a fresh copy with an empty cache; the table gives
# medians. One pair says little on a shared VM: the same work measured 20.7 and 25.6 s of CPU an hour apart, and
# the two tools of one pair run a minute apart. The extra rounds come first; the last pair is the trees the rest
# of the script uses.
COLD_ROUNDS=${COLD_ROUNDS:-3}
for r in $(seq $((COLD_ROUNDS - 1))); do
	cp -a "$TMP/src" "$TMP/tree-ninja.$r"
	[[ $MC_SKIP == 1 ]] || cp -a "$TMP/src" "$TMP/tree-mc.$r"
done
export XDG_CACHE_HOME=$TMP/xdg-cache # keep mc's default cache location out of the user's home

source "$ROOT/bench/fs.sh"
fs_settle "$TMP"
N_COLDS=() M_COLDS=()
for r in $(seq $((COLD_ROUNDS - 1))); do
	note "cold round $r of $COLD_ROUNDS: ninja, then mc, on fresh copies"
	timed "ninja-cold-$r" ninja -C "$TMP/tree-ninja.$r" -j "$JOBS"
	N_COLDS+=("$ELAPSED")
	if [[ $MC_SKIP != 1 ]]; then
		timed "mc-cold-$r" bash -c 'cd "$1" && shift && exec "$@"' _ "$TMP/tree-mc.$r" \
			"$BIN/mc" build -j "$JOBS" --cache-dir "$TMP/mc-cache.$r" //...
		M_COLDS+=("$ELAPSED")
	fi
done
[[ ! -e $TMP/tree-ninja/.ninja_log ]] || die "stale .ninja_log in a fresh tree"
note "ninja: cold build of $NSTAGES stages at -j$JOBS"
timed ninja-cold run_ninja
N_COLDS+=("$ELAPSED")
N_COLD=$(median "${N_COLDS[@]}")
note "ninja: cold ${N_COLDS[*]} -> median $N_COLD"
check_ninja_outputs
snapshot_ninja "$TMP/ref-cold"

samples=()
for i in 1 2 3; do
	timed "ninja-null-$i" run_ninja
	grep -q 'no work to do' "$LOGS/ninja-null-$i.log" || die "ninja null build $i did work"
	samples+=("$ELAPSED")
done
N_NULL=$(median "${samples[@]}")
N_NULL1=${samples[0]}
note "ninja: null ${samples[*]} -> median $N_NULL"

samples=()
N_AFFECTED=
for i in 1 2 3; do
	printf 'bench edit %d\n' "$i" >>"$TMP/tree-ninja/$TOUCH"
	timed "ninja-touch-$i" run_ninja
	samples+=("$ELAPSED")
	N_AFFECTED=$(grep -Ec '^\[[0-9]+/[0-9]+\]' "$LOGS/ninja-touch-$i.log" || true)
	# ninja trusts mtimes: if the clock stepped back since the cold build (a resumed VM does that), the edited
	# source looks older than its output and ninja keeps a stale output, which would be blamed on mc below.
	[[ $N_AFFECTED != 0 ]] || die "ninja did not rebuild after edit $i: $TOUCH is not newer than $TOUCH_OUT ($(stat -c '%y' "$TMP/tree-ninja/$TOUCH") vs $(stat -c '%y' "$TMP/tree-ninja/$TOUCH_OUT")); did the clock step back? run again"
done
N_TOUCH=$(median "${samples[@]}")
note "ninja: touched $TOUCH: ${samples[*]} -> median $N_TOUCH ($N_AFFECTED stages rerun each time)"
check_ninja_outputs

N_RSS=$(peak_rss_mb ninja-rss ninja -C "$TMP/tree-ninja" -j "$JOBS")

# --- mc ----------------------------------------------------------------------

M_COLD=- M_NULL=- M_NULL1=- M_TOUCH=- M_RSS=- M_QRDEPS=- M_QDEPS=-
if [[ $MC_SKIP != 1 ]]; then
	MC_CACHE=$TMP/mc-cache
	# mc runs inside its workspace; cd here rather than in a subshell per run.
	cd "$TMP/tree-mc"
	MC_BUILD=("$BIN/mc" build -j "$JOBS" --cache-dir "$MC_CACHE" //...)
	run_mc() { "${MC_BUILD[@]}"; }
	mc_query() { "$BIN/mc" query --cache-dir "$MC_CACHE" "$1"; }
	# count_rdeps STAGE: size of rdeps(//..., STAGE) per edges.txt, itself included,
	# a cross-check for the query output (its correctness is tested elsewhere).
	count_rdeps() {
		awk -v t="$1" '{ for (i = 2; i <= NF; i++) rd[$i] = rd[$i] " " $1 }
			END { q[0] = t; seen[t] = 1; h = 0; n = 1
				while (h < n) { m = split(rd[q[h++]], a, " ")
					for (j = 1; j <= m; j++) if (!(a[j] in seen)) { seen[a[j]] = 1; q[n++] = a[j] } }
				print n }' "$TMP/src/edges.txt"
	}

	[[ ! -e $MC_CACHE ]] || die "cache dir exists before the cold build"
	note "mc: cold build of $NSTAGES stages at -j$JOBS"
	timed mc-cold run_mc
	M_COLDS+=("$ELAPSED")
	M_COLD=$(median "${M_COLDS[@]}")
	note "mc: cold ${M_COLDS[*]} -> median $M_COLD"
	check_same_outputs "after the cold build" "$TMP/ref-cold"

	samples=()
	for i in 1 2 3; do
		timed "mc-null-$i" run_mc
		samples+=("$ELAPSED")
	done
	M_NULL=$(median "${samples[@]}")
	# The first build after a build is the one users wait for most: it must
	# not be the one that catches up on what the build left to do.
	M_NULL1=${samples[0]}
	note "mc: null ${samples[*]} -> median $M_NULL"

	samples=()
	for i in 1 2 3; do
		printf 'bench edit %d\n' "$i" >>"$TMP/tree-mc/$TOUCH"
		timed "mc-touch-$i" run_mc
		samples+=("$ELAPSED")
	done
	M_TOUCH=$(median "${samples[@]}")
	note "mc: touched $TOUCH: ${samples[*]} -> median $M_TOUCH"
	check_same_outputs "after the edits" "$TMP/tree-ninja"

	M_RSS=$(peak_rss_mb mc-rss "${MC_BUILD[@]}")

	# mc query lands after mc build: a failing query is n/a, not a failed run.
	if run_timed mc-query-rdeps mc_query 'rdeps(//..., //pkg0000:s00)'; then
		M_QRDEPS=$ELAPSED
		note "mc: rdeps query returned $(grep -c . "$LOGS/mc-query-rdeps.log") lines; edges.txt has $(count_rdeps pkg0000:s00) stages in rdeps(//..., //pkg0000:s00)"
	else
		M_QRDEPS=n/a
		note "mc query rdeps failed (n/a): $(tail -n 1 "$LOGS/mc-query-rdeps.log")"
	fi
	if run_timed mc-query-deps mc_query 'deps(//...)'; then
		M_QDEPS=$ELAPSED
		note "mc: deps query returned $(grep -c . "$LOGS/mc-query-deps.log") lines"
	else
		M_QDEPS=n/a
		note "mc query deps failed (n/a): $(tail -n 1 "$LOGS/mc-query-deps.log")"
	fi
fi

# --- report ------------------------------------------------------------------

MISSES=0
# verdict VAR MC_VALUE AWK_CONDITION_ON_m: sets VAR to PASS/MISS, or to
# n/a or skipped when mc has no number. Not run in $(...) so MISSES counts.
verdict() {
	local v
	if [[ $2 == - ]]; then v=skipped
	elif [[ $2 == n/a ]]; then v=n/a
	elif awk -v m="$2" "BEGIN { exit !($3) }"; then v=PASS
	else v=MISS; MISSES=$((MISSES + 1)); fi
	printf -v "$1" %s "$v"
}
ratio() {
	if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then
		awk -v n="$1" -v m="$2" 'BEGIN { if (n > 0) printf "%.2fx", m / n; else print "-" }'
	else
		echo -
	fi
}
row() { printf '%-26s %10s %10s %9s  %-34s %s\n' "$@"; }

T_TOUCH=$(awk -v n="$N_TOUCH" 'BEGIN { printf "%.3f", 0.3 + n }')
verdict V_COLD "$M_COLD" "m <= 1.5 * $N_COLD"
verdict V_NULL "$M_NULL" "m <= 0.3"
verdict V_NULL1 "$M_NULL1" "m <= 0.3"
verdict V_TOUCH "$M_TOUCH" "m <= $T_TOUCH"
verdict V_RSS "$M_RSS" "m <= 200"
verdict V_QRDEPS "$M_QRDEPS" "m <= 0.3"
verdict V_QDEPS "$M_QDEPS" "m <= 0.3"

echo
echo "mc vs ninja: $PACKAGES packages x $STAGES stages = $NSTAGES stages, -j$JOBS, seed $SEED"
echo "$(ninja --version | sed 's/^/ninja /'), $(nproc) cores, $(uname -sr), tree on $(stat -f -c %T "$TMP")"
echo
row metric "ninja (s)" "mc (s)" mc/ninja target verdict
row "cold (median of $COLD_ROUNDS)" "$N_COLD" "$M_COLD" "$(ratio "$N_COLD" "$M_COLD")" "mc <= 1.5x ninja" "$V_COLD"
row "null, first after cold" "$N_NULL1" "$M_NULL1" "$(ratio "$N_NULL1" "$M_NULL1")" "mc <= 0.3 s" "$V_NULL1"
row "null (median of 3)" "$N_NULL" "$M_NULL" "$(ratio "$N_NULL" "$M_NULL")" "mc <= 0.3 s" "$V_NULL"
row "touched (median of 3)" "$N_TOUCH" "$M_TOUCH" "$(ratio "$N_TOUCH" "$M_TOUCH")" "mc <= 0.3 s + ninja ($N_AFFECTED stages)" "$V_TOUCH"
row "null peak RSS (MB)" "$N_RSS" "$M_RSS" "$(ratio "$N_RSS" "$M_RSS")" "mc <= 200 MB" "$V_RSS"
row "query rdeps(//...,s00)" - "$M_QRDEPS" - "mc <= 0.3 s" "$V_QRDEPS"
row "query deps(//...)" - "$M_QDEPS" - "mc <= 0.3 s" "$V_QDEPS"
echo
echo "touched = append a line to $TOUCH; logs in $LOGS$([[ $KEEP == 1 ]] || echo ' (removed; KEEP=1 keeps them)')"
echo "creating a file in $BENCH_TMP cost $FS_PROBE_US µs before the cold builds (bench/fs.sh)"

if [[ $STRICT == 1 && $MISSES -gt 0 ]]; then
	die "$MISSES target(s) missed"
fi
