#!/usr/bin/env bash
# The shared-cache benchmark (issue 6): a fully remote-cached build of the
# generated monorepo — a fresh local cache, a warm bucket, every output
# materialized in mc-out/ — against a plain parallel GET of the same objects
# with the same SDK (bench/s3get). MinIO runs on 127.0.0.1 with a temp dir.
#
#   bash bench/remote.sh                 # 1000 packages x 10 stages
#   PACKAGES=100 bash bench/remote.sh    # quick
#
# Needs minio (go install github.com/minio/minio@latest). MC=PATH uses a
# prebuilt mc. Prints one table to stdout; progress to stderr.
set -euo pipefail
export LC_ALL=C
PACKAGES=${PACKAGES:-1000}
STAGES=${STAGES:-10}
JOBS=${JOBS:-2}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d "$BENCH_TMP/mc-remote.XXXXXX")
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

note "generating $PACKAGES x $STAGES stages"
(cd "$ROOT" && go run ./bench/gen -out "$TMP/ws" -packages "$PACKAGES" -stages "$STAGES" -seed 1 >/dev/null)
export MC_CACHE=s3://bench/c

now() { echo "$EPOCHREALTIME"; }
note "machine A: cold build, uploading"
(cd "$TMP/ws" && "$MC" build -j "$JOBS" --cache-dir "$TMP/a" //... 2>"$TMP/a.log") || die "build A failed: $(tail -5 "$TMP/a.log")"
grep -q 'Shared cache' "$TMP/a.log" || die "no shared cache line in A's summary"

note "machine B: fresh local cache, warm bucket"
rm -rf "$TMP/ws/mc-out"
t0=$(now)
(cd "$TMP/ws" && "$MC" build -j "$JOBS" --cache-dir "$TMP/b" //... 2>"$TMP/b.log") || die "build B failed: $(tail -5 "$TMP/b.log")"
t1=$(now)
grep -q '^Build: 0 built' "$TMP/b.log" || die "machine B built something: $(grep '^Build' "$TMP/b.log")"
mcwall=$(echo "$t1 - $t0" | bc -l)
line=$(grep '^Shared cache' "$TMP/b.log")
hits=$(sed -E 's/.*: ([0-9]+) hits.*/\1/' <<<"$line")
down=$(sed -E 's/.* ([0-9]+) downloaded.*/\1/' <<<"$line")
mcobj=$((hits + down)) # one result and its blobs per stage
outs=$(find "$TMP/ws/mc-out" -type f | wc -l)

note "plain parallel GET of the same objects"
read -r _ nobj _ nbytes _ getwall < <("$TMP/s3get" -bucket bench -prefix c/)

printf '\nshared cache: %d packages x %d stages, -j%d, MinIO on 127.0.0.1\n\n' "$PACKAGES" "$STAGES" "$JOBS"
printf '%-44s %10s %10s %12s\n' "" "objects" "seconds" "objects/s"
printf '%-44s %10d %10.3f %12.0f\n' "mc build, fresh local cache (mc-out: $outs files)" "$mcobj" "$mcwall" "$(echo "$mcobj / $mcwall" | bc -l)"
printf '%-44s %10d %10.3f %12.0f\n' "plain parallel GET (s3get, 32 at once)" "$nobj" "$getwall" "$(echo "$nobj / $getwall" | bc -l)"
ratio=$(echo "($mcobj / $mcwall) / ($nobj / $getwall) * 100" | bc -l)
verdict=MISS
(($(echo "$ratio >= 70" | bc -l))) && verdict=PASS
printf '\nmc reaches %.0f%% of the plain GET throughput (target >= 70%%): %s\n' "$ratio" "$verdict"
printf '(objects are tiny md5sum lines: the rate of requests, not bytes/s, is what is measured; %s bytes in all)\n' "$nbytes"
