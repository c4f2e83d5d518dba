package pipeline

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
)

// RemoteURL is the shared cache in force: --cache, then MC_CACHE, then
// WORKSPACE.mc; "" for none.
func RemoteURL(getenv func(string) (string, bool), ws *graph.Workspace, flagURL string) string {
	if flagURL != "" {
		return flagURL
	}
	if v, ok := getenv("MC_CACHE"); ok && v != "" {
		return v
	}
	return ws.Cache
}

// OpenRemote opens the shared cache named by --cache (flagURL), MC_CACHE or
// WORKSPACE.mc, in that order; nil, nil when none is configured. It does no
// network I/O: an unreachable bucket shows up (and fails open) in the build.
func OpenRemote(ctx context.Context, getenv func(string) (string, bool), ws *graph.Workspace, flagURL string) (cas.Remote, error) {
	u := RemoteURL(getenv, ws, flagURL)
	if u == "" {
		return nil, nil
	}
	if !strings.HasPrefix(u, "s3://") {
		return nil, errkind.Usagef("shared cache %q: only s3://bucket/prefix URLs are supported", u)
	}
	r, err := s3.Open(ctx, u, s3.Options{Getenv: getenv})
	if err != nil {
		// A malformed URL or AWS configuration is the user's to fix.
		return nil, errkind.Usagef("shared cache: %v", err)
	}
	return r, nil
}

// cacheWriteSetting is --cache-write, or MC_CACHE_WRITE when the flag is not
// given (0/false: read the shared cache only).
func cacheWriteSetting(getenv func(string) (string, bool), flagSet, flag bool) (bool, error) {
	if flagSet {
		return flag, nil
	}
	v, ok := getenv("MC_CACHE_WRITE")
	if !ok || v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errkind.Usagef("MC_CACHE_WRITE=%q: want 1 or 0 (true or false)", v)
	}
	return b, nil
}

// printRemoteSummary adds the shared cache's line to the build summary:
// loud when anything failed, because a silently failing cache makes every
// build slow without anyone noticing.
func printRemoteSummary(w io.Writer, r *event.RemoteStats) {
	if r == nil {
		return
	}
	mode := ""
	if r.ReadOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(w, "Shared cache %s%s: %d hits, %d misses, %d downloaded (%s), %d uploaded\n",
		r.URL, mode, r.Hits, r.Misses, r.Downloaded, fmtBytes(r.DownloadedBytes), r.Uploaded)
	if n := r.Failed(); n > 0 || r.Corrupt > 0 {
		fmt.Fprintf(w, "WARNING: shared cache %s: %d lookups, %d downloads and %d uploads failed", r.URL,
			r.LookupFailures, r.DownloadFailures, r.UploadFailures)
		if r.Corrupt > 0 {
			fmt.Fprintf(w, ", %d corrupt objects ignored", r.Corrupt)
		}
		if r.Disabled {
			fmt.Fprint(w, "; it was not used for the rest of the build")
		}
		fmt.Fprintf(w, "\n  first error: %s\n", r.FirstError)
	}
}

// fmtBytes is n in B, KiB, MiB or GiB.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// untrustedRemote opens the shared cache at url as an untrusted build sees
// it: its own tier url/untrusted, read first and the only one written, and
// the trusted tier url, read only.
func untrustedRemote(ctx context.Context, getenv func(string) (string, bool), url string, trusted cas.Remote) (cas.Remote, error) {
	own, err := s3.Open(ctx, untrustedURL(url), s3.Options{Getenv: getenv})
	if err != nil {
		return nil, errkind.Usagef("shared cache: %v", err)
	}
	return cas.UntrustedRemote(own, trusted), nil
}

// untrustedURL is the untrusted tier of the shared cache at url.
func untrustedURL(url string) string {
	return strings.TrimSuffix(url, "/") + "/untrusted"
}

// requireSandbox stops an untrusted build that cannot isolate its stages
// (SPEC §4a: exit 3). A stage of a pull request run without a sandbox can
// read the whole machine: the trusted cache, mc's environment and
// credentials. The executor was made in SandboxRequired mode, so why
// wraps sandbox.ErrNoSandbox and says what is missing.
func requireSandbox(why error) error {
	return errkind.Infra(fmt.Errorf("an untrusted build needs a sandbox and none works here: its stages would see "+
		"this machine's files and credentials: %w", why))
}
