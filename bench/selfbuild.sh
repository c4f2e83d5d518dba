#!/usr/bin/env bash
# The self-build benchmark (issue 20): mc testing its own repository, package
# by package (the root BUILD.mc), after a one-package change, against
# `go test` of the same packages with a warm Go cache; then a second machine
# sharing only the S3 cache. See bench/README.md.
#
#   bash bench/selfbuild.sh               # 3 rounds, graph/ (mid-graph) and ui/ (leaf) edited
#   ROUNDS=5 bash bench/selfbuild.sh
#   REMOTE=0 bash bench/selfbuild.sh      # part (a) only, no MinIO
#
# Like with like, twice. (1) The issue's target: `go test -p JOBS PKGS` of
# the packages the test stages of BUILD.mc name (`mc query 'tests(//...)'`,
# 19 today), every test of each, nothing selected with -run or skipped. The
# packages whose tests start bubblewrap, runc, a registry, MinIO or Chromium
# (sandbox, oci, cas/s3, runner, server, cmd/mc) have no test stage:
# scripts/test runs them with `go test`. Each side has its own warm cache
# (Go's build and test cache in a GOCACHE of its own; mc's local cache, whose
# go-build/go-mod cache mounts the stages share). What `mc test //...` does
# beyond that is counted in its time: it builds every stage under //..., so
# it also compiles each affected package (one stage each), vets the affected
# packages that have no test stage (their vet stages) and links //:mc.
# (2) The same work in Go: those vets, `go build ./cmd/mc` and `go test
# -vet=all PKGS`, side by side, with the GOFLAGS of BUILD.mc's stages; what
# mc adds to the work itself.
#
# The change (EDIT): it changes the package's code (its object file and
# every test binary that links it) but not its API, so Go recompiles the
# package, relinks and reruns the tests of it and its dependents, and must
# not report them "(cached)"; a comment or an unused function would leave
# the linked test binaries identical and Go would rerun nothing. The script
# checks, on both sides, that the tests rerun are exactly those of `mc query
# 'tests(rdeps(//..., //:FILE))'`.
#   EDIT=body (default): the body of a function changes. Before the
#     warm-ups the copy gets, in each edited file, a function that is not
#     inlined (as most functions of a real package are too big to be; a
#     //go:noinline stands for that here) called by an init function; each
#     round changes the number it returns. The package's export data stays
#     the same, so mc recompiles the edited package alone before the tests
#     and links (its dependents' compiles key on export data); Go compiles
#     the dependents again.
#   EDIT=decl: a new declaration: each round appends an exported package
#     variable, named after the run and the round, set by a new init
#     function. The package's export data changes (the new name, and the
#     indices of its symbols), so mc's dependents' compiles run too. (An
#     unexported one would change the export data by its count of symbols
#     only: a run reusing MC_CACHE_DIR would find the dependents' compiles
#     of an earlier run's same round cached.)
#
# Part (b): MinIO on 127.0.0.1 (bench/minio.sh). Machine A (the copy above,
# before any edit) runs `mc test //...` with MC_CACHE=s3://bench/self and
# uploads; machine B is a fresh `git clone` of it in a new directory with an
# empty local cache (so empty go-build/go-mod cache mounts too: its stages
# download modules from GOPROXY and compile cold) and the mid-graph edit;
# its `mc test //...` must run only the tests of the edited package and its
# dependents, and take every other result from the bucket.
#
# Settings: ROUNDS=3 JOBS=2 MID=graph/key.go LEAF=ui/ui.go EDIT=body REMOTE=1 KEEP=0
# MC=PATH (prebuilt mc) BENCH_TMP=DIR PROFILE=1 (keep a --profile trace of
# each measured mc run in the logs; implies KEEP=1). On a loaded machine the
# cold warm-ups take most of the time (sqlite's C, the AWS SDK): MC_CACHE_DIR
# and GO_CACHE_DIR reuse a warm mc cache and Go cache of an earlier run (the
# null runs before the rounds absorb what they lack). One results block to
# stdout, progress to stderr.
set -euo pipefail
export LC_ALL=C
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2}
MID=${MID:-graph/key.go}
LEAF=${LEAF:-ui/ui.go}
EDIT=${EDIT:-body}
REMOTE=${REMOTE:-1}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}
[[ $PROFILE == 1 ]] && KEEP=1
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
note() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive integer, got '$JOBS'"
[[ $EDIT == body || $EDIT == decl ]] || die "EDIT must be body or decl, got '$EDIT'"
[[ $EDIT == decl || $(dirname "$MID") != $(dirname "$LEAF") ]] || die "EDIT=body needs MID and LEAF in different packages"
command -v go >/dev/null || die "go not found"
command -v git >/dev/null || die "git not found"
for f in "$MID" "$LEAF"; do [[ -f $ROOT/$f && $f == *.go && $f != *_test.go ]] || die "$f is not a non-test Go file of the repository"; done

TMP=$(mktemp -d "$BENCH_TMP/mc-selfbuild.XXXXXX")
LOGS=$TMP/logs
mkdir -p "$LOGS"
MINIO_PID=
minio_stop() { :; }
cleanup() {
	minio_stop
	if [[ $KEEP == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
export XDG_CACHE_HOME=$TMP/xdg # mc's default cache stays out of the user's home
[[ -z ${MC_CACHE_DIR:-} || $REMOTE == 0 ]] || die "MC_CACHE_DIR needs REMOTE=0: machine A must build from an empty cache to upload everything"
MC_CACHE_DIR=${MC_CACHE_DIR:-$TMP/cache-a}
export GOFLAGS= GOTOOLCHAIN=local
unset MC_CACHE

if [[ -z ${MC:-} ]]; then
	note "building mc"
	(cd "$ROOT" && go build -o "$TMP/mc" ./cmd/mc)
	MC=$TMP/mc
fi
[[ -x $MC ]] || die "MC=$MC is not executable"

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ELAPSED=
# timed LOG DIR CMD...: runs CMD in DIR, output to $LOGS/LOG.log, sets ELAPSED; a failure ends the benchmark.
timed() {
	local log=$LOGS/$1.log dir=$2 t0 t1
	shift 2
	local rc=0
	t0=$EPOCHREALTIME
	(cd "$dir" && "$@") >"$log" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	# Exit 1 from go test or mc test is a failing test: the run did the same work, so it is measured, and said in
	# the results (ui's TestTextTTY fails on a machine loaded enough to stretch its timings). A build failure is not.
	if ((rc == 1)) && ! grep -q 'build failed\|FAILED //:.*\.compile\|FAILED //:mc$' "$log"; then
		FLAKES+=("$(basename "$log" .log): $(grep -E -- '^--- FAIL|^FAILED|^//:.* FAILED' "$log" | head -3 | tr '\n' ' ')")
		note "tests failed in $(basename "$log"): measured anyway, reported below"
	elif ((rc != 0)); then
		tail -n 30 "$log" >&2
		die "'$*' in $dir failed (log: $log)"
	fi
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
LOADS=()
FLAKES=()

# --- the copy of the repository (machine A) ------------------------------------

A=$TMP/a
mkdir -p "$A"
# The working tree as it is (tracked and untracked files, not ignored ones), committed in a repository of its own
# so that machine B can clone it.
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$A"
if [[ $EDIT == body ]]; then
	# The function each round edits (see EDIT above), part of the base that machine B clones too.
	for f in "$MID" "$LEAF"; do
		printf '\n// selfbenchValue: bench/selfbuild.sh changes the number it returns.\n//\n//go:noinline\nfunc selfbenchValue() int { return 0 }\n\nfunc init() {\n\tif selfbenchValue() < 0 {\n\t\tpanic("selfbench")\n\t}\n}\n' >>"$A/$f"
	done
fi
(cd "$A" && git init -q && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm base)
mca() { "$MC" test -j "$JOBS" --cache-dir "$MC_CACHE_DIR" "$@" //...; }

# The test stages and the packages they test (their command is `gobuild test ... -dir ./PKG ...`).
"$MC" -C "$A" query --cache-dir "$TMP/cache-q" 'tests(//...)' >"$LOGS/tests.txt"
"$MC" -C "$A" query --cache-dir "$TMP/cache-q" --output build 'tests(//...)' >"$LOGS/tests.build"
mapfile -t PKGS < <(sed -nE 's|^ *cmd = "[^"]*gobuild test [^"]*-dir (\./[^ "]+)[ "].*$|\1|p' "$LOGS/tests.build" | sort -u)
NTESTS=$(grep -c . "$LOGS/tests.txt")
((${#PKGS[@]} == NTESTS)) || die "found ${#PKGS[@]} packages in the $NTESTS test stages' commands (mc query --output build): BUILD.mc's go_test changed?"
note "test stages: $NTESTS; go test ${PKGS[*]}"
# affected FILE: the test stages a change to FILE must rerun (mc query), one per line.
affected() { "$MC" -C "$A" query --cache-dir "$TMP/cache-q" "tests(rdeps(//..., //:$1))"; }
# test_pkgs: the packages of those stages (//:lang_test -> ./lang), as go test prints them.
test_pkgs() {
	local l
	while read -r l; do
		grep -A8 "name = \"${l#//:}\"" "$LOGS/tests.build" | sed -nE 's|^ *cmd = "[^"]*gobuild test [^"]*-dir \./([^ "]+)[ "].*$|github.com/mc-build/mc/\1|p' | head -1
	done | sort
}
# The packages vetted by a vet stage of their own (the others by their test stage, with every analyzer).
"$MC" -C "$A" query --cache-dir "$TMP/cache-q" --output build "filter('\\.vet\$', //...)" >"$LOGS/vets.build"
mapfile -t VETPKGS < <(sed -nE 's|^ *cmd = "[^"]*gobuild vet [^"]*-dir (\./[^ "]+)[ "].*$|\1|p' "$LOGS/vets.build" | sort -u)
((${#VETPKGS[@]} > 0)) || die "no vet stages found (mc query --output build): BUILD.mc's go_library changed?"
# The same work in Go: what `mc test //...` does here, done by go commands run side by side with the flags of
# BUILD.mc's Go stages: vet the packages with a vet stage, link the binary, test the packages with a test stage.
# A Go cache of its own: Go's test cache would otherwise serve this side results of `go test` above (seen: after an
# edit, the tests of six dependents "(cached)" here).
SAME_FLAGS="-trimpath -mod=readonly -ldflags=-w"
go_same() {
	local rc=0 p1 p2
	export GOCACHE=$GOCACHE.same
	GOFLAGS=$SAME_FLAGS go vet "${VETPKGS[@]}" &
	p1=$!
	GOFLAGS=$SAME_FLAGS CGO_ENABLED=1 go build -o "$TMP/mc-same" ./cmd/mc &
	p2=$!
	GOFLAGS=$SAME_FLAGS go test -vet=all -p "$JOBS" "${PKGS[@]}" || rc=$?
	wait "$p1" || rc=2
	wait "$p2" || rc=2
	return "$rc"
}
affected "$MID" >"$LOGS/affected-mid.txt"
affected "$LEAF" >"$LOGS/affected-leaf.txt"

edits=0
RUN_ID=$(date +%s%N) # edits unique across runs: a reused cache (MC_CACHE_DIR) must not already hold their results
# edit FILE DIR: EDIT=body: a new number returned by FILE's selfbenchValue in DIR; EDIT=decl: a new package variable
# set by an init function, appended to FILE in DIR.
edit() {
	edits=$((edits + 1))
	if [[ $EDIT == body ]]; then
		local n=$((RUN_ID % 1000000000 * 1000 + edits))
		sed -i -E "s/^(func selfbenchValue\(\) int \{ return )[0-9]+ \}\$/\1$n }/" "$2/$1"
		grep -q "return $n }" "$2/$1" || die "edit of $1 in $2 did not apply"
		return
	fi
	local v=SelfbenchEdit${RUN_ID}x$edits
	printf '\n// selfbench edit %d\nvar %s int\n\nfunc init() { %s = %d }\n' "$edits" "$v" "$v" "$edits" >>"$2/$1"
}

# go_reran LOG: the packages go test ran (not "(cached)"), sorted.
go_reran() { awk '$1 == "ok" && $3 != "(cached)" { print $2 }' "$1" | sort; }
# mc_ran LOG: the test stages mc ran (not cached), sorted; mc_cached LOG: how many were cached.
mc_ran() { sed -nE 's/^\[(\/\/:[^]]*_test)\] started$/\1/p' "$1" | sort -u; }
mc_tests_cached() { grep -Eo '[0-9]+ cached' <<<"$(grep -E '^(Test|Tests)' "$1" | tail -1)" | grep -Eo '[0-9]+' || echo "?"; }

# --- part (b) first: A uploads before any edit, B clones --------------------------

if [[ $REMOTE == 1 ]]; then
	source "$ROOT/bench/minio.sh"
	export MC_CACHE=s3://bench/self
	note "machine A: mc test //... from cold, uploading to $MC_CACHE ($(load))"
	timed mc-a-cold "$A" mca
	A_COLD=$ELAPSED
	grep -q 'Shared cache' "$LOGS/mc-a-cold.log" || die "no shared cache line in A's summary"
	B=$TMP/b
	git clone -q "$A" "$B"
	edit "$MID" "$B"
	note "machine B: fresh clone, empty local cache, $MID edited: mc test //... ($(load))"
	LOADS+=("$(load)")
	timed mc-b "$B" "$MC" test -j "$JOBS" --cache-dir "$TMP/cache-b" //...
	B_TIME=$ELAPSED
	mc_ran "$LOGS/mc-b.log" >"$LOGS/b-ran.txt"
	B_RAN=$(grep -c . "$LOGS/b-ran.txt" || true)
	B_BUILT=$(grep -E '^(Build|Test):' "$LOGS/mc-b.log" | tail -1)
	B_SHARED=$(grep -E '^Shared cache' "$LOGS/mc-b.log" | tail -1)
	if cmp -s "$LOGS/b-ran.txt" "$LOGS/affected-mid.txt"; then
		B_OK="= tests(rdeps(//..., //:$MID)): yes"
	else
		B_OK="= tests(rdeps(//..., //:$MID)): NO (ran: $(tr '\n' ' ' <"$LOGS/b-ran.txt"); rdeps: $(tr '\n' ' ' <"$LOGS/affected-mid.txt"))"
		B_FAIL=1
	fi
	minio_stop
	unset MC_CACHE
fi

# --- part (a): warm caches, then the same edit measured on both sides ---------------

export GOCACHE=${GO_CACHE_DIR:-$TMP/gocache} # the baseline's own Go cache, warmed here

note "warming the Go cache: go test ${PKGS[*]}"
timed go-warm "$A" go test -p "$JOBS" "${PKGS[@]}"
timed same-warm "$A" go_same
if [[ $REMOTE != 1 ]]; then
	note "warming mc's cache: mc test //..."
	timed mc-warm "$A" mca
fi
# One null run each, so that what the warm-up left to do is not measured.
timed go-null "$A" go test -p "$JOBS" "${PKGS[@]}"
GO_NULL=$ELAPSED
timed same-null "$A" go_same
SAME_NULL=$ELAPSED
timed mc-null "$A" mca
MC_NULL=$ELAPSED
[[ -z $(mc_ran "$LOGS/mc-null.log") ]] || die "mc's null run ran tests: $(mc_ran "$LOGS/mc-null.log" | tr '\n' ' ')"

declare -A GO_T MC_T SAME_T
FAIL=0
for r in $(seq "$ROUNDS"); do
	for which in mid leaf; do
		f=$MID
		[[ $which == leaf ]] && f=$LEAF
		want=$LOGS/affected-$which.txt
		edit "$f" "$A"
		LOADS+=("$(load)")
		timed "go-$which-$r" "$A" go test -p "$JOBS" "${PKGS[@]}"
		GO_T[$which]+=" $ELAPSED"
		go_s=$ELAPSED
		timed "same-$which-$r" "$A" go_same
		SAME_T[$which]+=" $ELAPSED"
		same_s=$ELAPSED
		if ! cmp -s <(go_reran "$LOGS/go-$which-$r.log") <(test_pkgs <"$want"); then
			note "round $r, $f: go test reran $(go_reran "$LOGS/go-$which-$r.log" | tr '\n' ' '), want $(test_pkgs <"$want" | tr '\n' ' ')"
			FAIL=1
		fi
		# Without DWARF (-ldflags=-w) a dependent's test binary can come out byte for byte the same after the
		# edit (the new variable is never read, the linker drops it), and Go's test cache then skips its run:
		# this side did less than mc, whose keys cover the archive. Said, not failed.
		if ! cmp -s <(go_reran "$LOGS/same-$which-$r.log") <(test_pkgs <"$want"); then
			note "round $r, $f: the same work in Go reran $(go_reran "$LOGS/same-$which-$r.log" | tr '\n' ' ') (identical test binaries are cached), mc reruns $(test_pkgs <"$want" | tr '\n' ' ')"
		fi
		prof=()
		[[ $PROFILE == 1 ]] && prof=(--profile "$LOGS/mc-$which-$r.trace.json")
		timed "mc-$which-$r" "$A" mca "${prof[@]}"
		MC_T[$which]+=" $ELAPSED"
		if ! cmp -s <(mc_ran "$LOGS/mc-$which-$r.log") "$want"; then
			note "round $r, $f: mc ran $(mc_ran "$LOGS/mc-$which-$r.log" | tr '\n' ' '), want $(tr '\n' ' ' <"$want")"
			FAIL=1
		fi
		note "round $r, $f: go test $go_s s, the same work in go $same_s s, mc test $ELAPSED s ($(load))"
	done
done
LOADS+=("$(load)")

# --- report ------------------------------------------------------------------

ratio() { awk -v g="$1" -v m="$2" 'BEGIN { printf "%.2fx", m / g }'; }
verdict() { awk -v g="$1" -v m="$2" 'BEGIN { print (m <= 1.5 * g) ? "PASS" : "MISS" }'; }
row() { printf '%-38s %10s %10s %8s  %s\n' "$@"; }
cpu=$(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo
echo "mc self-build: mc test //... vs go test of the same $NTESTS packages, -j$JOBS / -p$JOBS, median of $ROUNDS rounds, EDIT=$EDIT"
echo "machine: $(hostname), $(nproc) cores ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), tree on $(stat -f -c %T "$TMP")"
echo "load average (1/5/15 min) at each measured run: $(printf '[%s] ' "${LOADS[@]}")"
echo
row "after a change to" "go test (s)" "mc (s)" "mc/go" "target mc <= 1.5x go test"
for which in mid leaf; do
	f=$MID
	[[ $which == leaf ]] && f=$LEAF
	g=$(median ${GO_T[$which]}) m=$(median ${MC_T[$which]})
	row "$f ($(grep -c . "$LOGS/affected-$which.txt") test stages rerun)" "$g" "$m" "$(ratio "$g" "$m")" "$(verdict "$g" "$m")"
done
row "nothing (null run, once)" "$GO_NULL" "$MC_NULL" "$(ratio "$GO_NULL" "$MC_NULL")" ""
echo
echo "the same work in Go (side by side: go vet of the ${#VETPKGS[@]} packages with a vet stage, go build ./cmd/mc,"
echo "go test -vet=all of the $NTESTS; GOFLAGS=$SAME_FLAGS as BUILD.mc's stages):"
row "after a change to" "go (s)" "mc (s)" "mc/go" ""
for which in mid leaf; do
	f=$MID
	[[ $which == leaf ]] && f=$LEAF
	g=$(median ${SAME_T[$which]}) m=$(median ${MC_T[$which]})
	row "$f" "$g" "$m" "$(ratio "$g" "$m")" ""
done
row "nothing (null run, once)" "$SAME_NULL" "$MC_NULL" "$(ratio "$SAME_NULL" "$MC_NULL")" ""
echo "(rounds: go test${GO_T[mid]} /${GO_T[leaf]} s; same work${SAME_T[mid]} /${SAME_T[leaf]} s; mc${MC_T[mid]} /${MC_T[leaf]} s; mid then leaf)"
if [[ $REMOTE == 1 ]]; then
	echo
	echo "second machine (fresh clone, empty local cache, shared S3 cache only; $MID edited), one run:"
	echo "  A cold mc test //... uploading: ${A_COLD} s; B mc test //...: ${B_TIME} s"
	echo "  B ran $B_RAN of $NTESTS test stages, $((NTESTS - B_RAN)) from the shared cache; ran $B_OK"
	echo "  $B_BUILT"
	echo "  $B_SHARED"
fi
((${#FLAKES[@]} == 0)) || printf 'failing tests (measured anyway): %s\n' "${FLAKES[@]}"
echo
echo "logs in $LOGS$([[ $KEEP == 1 ]] || echo ' (removed; KEEP=1 keeps them)')"
[[ $FAIL == 0 && ${B_FAIL:-0} == 0 ]] || die "a side reran other tests than the edited package's and its dependents' (see above)"
