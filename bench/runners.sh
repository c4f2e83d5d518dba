#!/usr/bin/env bash
# The remote-runner benchmark (issue 7): a generated graph built on EC2
# runners against internal/ec2double (a double of the EC2 control plane
# only; its instances run the real bootstrap and `mc agent` as local process
# groups after BOOT) with MinIO as S3, for N = 4, 16, 64 runners. Prints each
# makespan against max(critical path, total work / N) + one boot.
#
#   bash bench/runners.sh                       # 500 stages, 0.5 s of work each, 2 s boot
#   PACKAGES=10 N=4 bash bench/runners.sh       # quick
#   BAKED=false bash bench/runners.sh           # each runner downloads mc (default: baked into the image)
#   NOTIFY=false bash bench/runners.sh          # runners cannot reach the coordinator: S3 polling only
#
# Needs minio (go install github.com/minio/minio@latest), bubblewrap, curl.
# MC=PATH uses a prebuilt mc (for real EC2 it would have to be static; here
# the "instances" share this machine's libraries).
set -euo pipefail
export LC_ALL=C
PACKAGES=${PACKAGES:-50}
WORK=${WORK:-500ms}
BOOT=${BOOT:-2s}
N=${N:-4,16,64}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d "$BENCH_TMP/mc-runners.XXXXXX")
cleanup() {
	minio_stop
	rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z ${MC:-} ]]; then
	note "building mc"
	(cd "$ROOT" && go build -o "$TMP/mc" ./cmd/mc)
	MC=$TMP/mc
fi
source "$ROOT/bench/minio.sh"
(cd "$ROOT" && go run ./bench/runners -mc "$MC" -dir "$TMP" -packages "$PACKAGES" -work "$WORK" -boot "$BOOT" -n "$N" -baked="${BAKED:-true}" -notify="${NOTIFY:-true}")
