# Sourced by the benchmarks (needs note() and python3). fs_settle DIR waits
# until creating files under DIR costs what it usually does, and sets
# FS_PROBE_US to the cost measured last (µs per file or directory).
#
# Why: on an ext4 without a journal (this project's CI VM), the kernel will
# not reuse an inode freed in the last minute, six while its inode-table
# block is dirty, and steps over each such inode whenever it allocates one
# (fs/ext4/ialloc.c, recently_deleted). After a mass deletion (a previous
# benchmark's clean-up, a test suite's temp dirs) creating a file costs
# 250-430 µs instead of ~11 µs for about six and a half minutes, measured
# with this very probe. mc creates some 12,000 files in a remote-cached build
# and ninja 10,000 in a cold one, so a run in that window measures the VM's
# allocator. SETTLE=0 skips the wait (the cost is still printed);
# SETTLE_MAX=SECONDS bounds it (default 480); SETTLE_US the threshold in µs (15; a settled ext4 or tmpfs reads 5-12,
# and 19 µs, a filesystem not quite settled, measured mc 1.59x ninja against 1.31-1.39x at 11-12 µs).
fs_settle() {
	local dir=$1 waited=0 i=0
	FS_PROBE_US=n/a
	if ! command -v python3 >/dev/null; then
		note "no python3: file creation is not probed, and the numbers may include the wait described in bench/fs.sh"
		return
	fi
	while :; do
		i=$((i + 1))
		FS_PROBE_US=$(python3 - "$dir/.fs-probe-$i" <<'PY'
import os, sys, time
d = sys.argv[1]
os.makedirs(d)
t = time.perf_counter()
for i in range(64):
    sub = os.path.join(d, "%02x" % i)
    os.mkdir(sub)
    for j in range(32):
        os.close(os.open(os.path.join(sub, str(j)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
print(round((time.perf_counter() - t) / (64 * 33) * 1e6))
PY
		) || die "the file-creation probe failed in $dir"
		((FS_PROBE_US <= ${SETTLE_US:-15})) && break
		if [[ ${SETTLE:-1} == 0 ]] || ((waited >= ${SETTLE_MAX:-480})); then
			note "creating a file in $dir costs $FS_PROBE_US µs (usually ~10); measuring anyway"
			break
		fi
		((waited > 0)) || note "creating a file in $dir costs $FS_PROBE_US µs now (usually ~10): the filesystem is stepping over recently deleted inodes (bench/fs.sh); waiting for it to settle, up to ${SETTLE_MAX:-480} s (SETTLE=0 measures now)"
		sync
		sleep 20
		waited=$((waited + 20))
	done
	((waited == 0 || FS_PROBE_US > ${SETTLE_US:-15})) || note "file creation settled after ${waited} s: $FS_PROBE_US µs"
}
