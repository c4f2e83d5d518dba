#!/usr/bin/env bash
# The cost of running a stage inside an image (issue 5): a trivial stage
# (cache = False, so it runs every time) in the local bubblewrap sandbox,
# and the same stage inside a busybox image built in the pipeline, run with
# runc over a warm (already unpacked) rootfs. Each is built RUNS times, one
# `mc build` per run; the table gives the medians of the stage's own time
# (the "running" phase: sandbox or container set-up, the command, teardown),
# of its whole time in mc (with restoring inputs and storing outputs) and of
# the wall time of the mc command.
#
#   bash bench/image.sh          # 20 runs each
#   RUNS=5 bash bench/image.sh   # quick
#
# Needs bwrap, runc, jq, /bin/busybox (busybox-static) and root (runc).
# MC=PATH uses a prebuilt mc. The table goes to stdout, progress to stderr.
set -euo pipefail
export LC_ALL=C
RUNS=${RUNS:-20}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in bwrap jq; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install ${tool/bwrap/bubblewrap})"
done
[[ -x /bin/busybox ]] || die "/bin/busybox not found (apt-get install busybox-static)"

TMP=$(mktemp -d "$BENCH_TMP/mc-image.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
if [[ -z ${MC:-} ]]; then
	note "building mc"
	(cd "$ROOT" && go build -o "$TMP/mc" ./cmd/mc)
	MC=$TMP/mc
fi

WS=$TMP/ws
mkdir -p "$WS/toolchain" "$WS/app"
echo 'workspace(name = "image-bench")' >"$WS/WORKSPACE.mc"
cat >"$WS/toolchain/BUILD.mc" <<'EOF'
stage(
    name = "applets",
    outs = ["bin/"],
    cmd = "mkdir bin && cp /bin/busybox bin/ && for a in sh echo cat; do ln -s busybox bin/$a; done",
)
image(name = "busybox", files = {"/bin": ":bin"}, env = {"PATH": "/bin"})
EOF
cat >"$WS/app/BUILD.mc" <<'EOF'
stage(name = "plain", srcs = ["in.txt"], outs = ["out.txt"], cache = False, cmd = "cat in.txt > out.txt")
stage(name = "boxed", srcs = ["in.txt"], outs = ["out.txt.2"], cache = False, cmd = "cat in.txt > out.txt.2",
      image = "//toolchain:busybox")
EOF
echo hello >"$WS/app/in.txt"
export XDG_CACHE_HOME=$TMP/cache

note "warming up: building the image, unpacking its rootfs"
"$MC" -C "$WS" build //... >/dev/null 2>&1 || die "the warm-up build failed: $("$MC" -C "$WS" build //... 2>&1 | tail -5)"

# run TARGET: one mc build; appends "running_us total_ms wall_ms" to $TMP/TARGET.
run() {
	local target=$1 start end
	start=$(date +%s%N)
	"$MC" -C "$WS" build --output=json "//app:$target" >"$TMP/events.json" || die "mc build //app:$target failed"
	end=$(date +%s%N)
	jq -r --arg l "//app:$target" --argjson wall $(((end - start) / 1000000)) \
		'select(.type == "stage_finished" and .label == $l)
		 | "\(.phases[] | select(.name == "running") | .duration_us) \(.duration_ms) \($wall)"' \
		"$TMP/events.json" >>"$TMP/$target"
}

note "running each stage $RUNS times, alternating"
: >"$TMP/plain"
: >"$TMP/boxed"
for ((i = 0; i < RUNS; i++)); do
	run plain
	run boxed
done
[[ $(wc -l <"$TMP/plain") -eq $RUNS && $(wc -l <"$TMP/boxed") -eq $RUNS ]] || die "missing stage_finished events"

# median FILE COLUMN
median() { cut -d' ' -f"$2" "$1" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

printf '%-28s %14s %14s %12s\n' "median of $RUNS runs" "running (ms)" "stage (ms)" "mc (ms)"
for t in plain boxed; do
	label="local sandbox (bwrap)"
	[[ $t == boxed ]] && label="in an image (runc)"
	printf '%-28s %14.1f %14s %12s\n' "$label" "$(awk -v us="$(median "$TMP/$t" 1)" 'BEGIN {print us / 1000}')" \
		"$(median "$TMP/$t" 2)" "$(median "$TMP/$t" 3)"
done
