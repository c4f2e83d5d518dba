package runner

import (
	"fmt"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
)

// BootstrapSpec is what a runner's user-data needs: where to fetch mc and
// how to start the agent. It holds no credentials and no secrets: the URL is
// presigned for one object (the mc binary, public knowledge) and expires.
type BootstrapSpec struct {
	BinaryURL    string     // presigned GET of the mc binary's blob
	BinaryDigest cas.Digest // checked before it runs
	AgentArgs    []string   // after "mc agent"
	TTL          time.Duration
	// Keep leaves the machine up after the agent (until the TTL).
	Keep bool
	// Local: the "machine" is a process group on this host (the local
	// provider): power-off kills the group instead of calling shutdown.
	Local bool
	// BakedDir is where an image may already hold mc, as
	// BakedDir/<sha256>/mc (DefaultBakedDir when ""): a runner whose image
	// has this very binary skips the download. The digest in the path is
	// the check — the directory belongs to the image's root, like a Nix
	// store path — so a baked binary is not hashed again at every boot.
	BakedDir string
}

// DefaultBakedDir is where runner images may hold mc binaries by digest.
const DefaultBakedDir = "/opt/mc"

// BakedPath is where an image holds the mc binary of digest d.
func BakedPath(dir string, d cas.Digest) string {
	if dir == "" {
		dir = DefaultBakedDir
	}
	return strings.TrimRight(dir, "/") + "/" + d.Hex() + "/mc"
}

// Bootstrap returns the user-data script: a POSIX sh script that needs only
// curl or wget and sha256sum, as on any stock Linux AMI.
func Bootstrap(s BootstrapSpec) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/sh")
	w("# mc runner bootstrap: fetch mc by digest, arm the TTL, run the agent, power off.")
	w("# It holds no credentials and no secrets (the agent uses the instance role).")
	w("set -u")
	if s.Local {
		secs := int(s.TTL.Seconds() + 0.999)
		w("poweroff_now() { kill -KILL 0; }")
		w("( sleep %d; echo 'mc runner: TTL reached, powering off' >&2; kill -KILL 0 ) &", max(secs, 1))
	} else {
		mins := int(s.TTL.Minutes() + 0.999)
		w("poweroff_now() { shutdown -h now; exit 0; }")
		w("shutdown -h +%d 'mc runner TTL'", max(mins, 1))
	}
	w("dir=$(mktemp -d \"${TMPDIR:-/tmp}/mc-runner.XXXXXX\") || poweroff_now")
	w("cd \"$dir\" || poweroff_now")
	w("mc=%s", shq(BakedPath(s.BakedDir, s.BinaryDigest)))
	w("if [ ! -x \"$mc\" ]; then")
	w("  mc=./mc")
	w("  url=%s", shq(s.BinaryURL))
	w("  ok=")
	w("  for i in 1 2 3 4 5; do")
	w("    if command -v curl >/dev/null 2>&1; then curl -fsS -o mc \"$url\" && ok=1; else wget -q -O mc \"$url\" && ok=1; fi")
	w("    [ -n \"$ok\" ] && break; sleep $i")
	w("  done")
	w("  [ -n \"$ok\" ] || { echo 'mc runner: cannot download mc' >&2; poweroff_now; }")
	w("  echo %s | sha256sum -c - >/dev/null || { echo 'mc runner: mc binary digest mismatch' >&2; poweroff_now; }", shq(s.BinaryDigest.Hex()+"  mc"))
	w("  chmod +x mc")
	w("fi")
	args := make([]string, len(s.AgentArgs))
	for i, a := range s.AgentArgs {
		args[i] = shq(a)
	}
	w("\"$mc\" agent %s", strings.Join(args, " "))
	w("echo \"mc runner: agent exited with status $?\" >&2")
	// The binary is tens of megabytes and no longer needed: a local runner
	// (or a kept one) must not leave one behind per stage.
	w("cd / && rm -rf \"$dir\"")
	if s.Keep {
		if s.Local {
			w("wait") // for the TTL's power-off
		} else {
			w("exit 0 # kept: the shutdown armed above ends it at the TTL")
		}
	} else {
		w("poweroff_now")
	}
	return b.String()
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
