package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mc-build/mc/cas"
)

// linkedInput is an input file that may share its inode with a store blob
// (a hard link): the stage must not change it.
type linkedInput struct {
	rel    string // workspace-relative, for messages
	path   string // in the sandbox
	digest cas.Digest
	ino    uint64
	mtime  time.Time
	size   int64
	mode   fs.FileMode
}

// record remembers the state of the input file at dst, just materialized.
func (s *stage) record(rel, dst string, d cas.Digest) error {
	fi, err := os.Lstat(dst)
	if err != nil {
		return fmt.Errorf("input %s: %w", rel, err)
	}
	li := linkedInput{rel: rel, path: dst, digest: d, mtime: fi.ModTime(), size: fi.Size(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		li.ino = st.Ino
	}
	s.linked = append(s.linked, li)
	return nil
}

// recordTree records the hard-linked files of a directory input.
func (s *stage) recordTree(rel, dst string, d cas.Digest) error {
	t, err := s.l.opts.Store.GetTree(d)
	if err != nil {
		return fmt.Errorf("input %s: %w", rel, err)
	}
	for _, e := range t.Entries {
		if e.Digest.IsZero() || e.Exec {
			continue
		}
		if err := s.record(path.Join(rel, e.Path), filepath.Join(dst, filepath.FromSlash(e.Path)), e.Digest); err != nil {
			return err
		}
	}
	return nil
}

// checkInputs fails the stage if it wrote to an input. The inode's state is
// looked at through the blob's path in the store first (what matters is
// that the store keeps no corrupted blob, which is then removed), then
// through the sandbox path (the link may have been a copy, or the blob
// replaced meanwhile). A file the stage replaced (a new inode) is no harm.
func (s *stage) checkInputs() error {
	var changed []string
	for _, li := range s.linked {
		blob := s.l.opts.Store.Path(li.digest)
		same, modified := li.stateAt(blob)
		if modified {
			changed = append(changed, li.rel)
			if err := s.l.opts.Store.Remove(li.digest); err != nil {
				return fmt.Errorf("removing the modified blob of %s: %w", li.rel, err)
			}
			continue
		}
		// The blob is the input's inode, unchanged: so is the input, if
		// the sandbox path still names it.
		if same {
			continue
		}
		if _, modified := li.stateAt(li.path); modified {
			changed = append(changed, li.rel)
		}
	}
	switch len(changed) {
	case 0:
		return nil
	case 1:
		return stageErrorf("stage modified its input %s (inputs are read-only)", changed[0])
	}
	return stageErrorf("stage modified its inputs %s (inputs are read-only)", strings.Join(changed, ", "))
}

// stateAt reports whether p is still the recorded inode (same), and
// whether it is, with a different content time, size or mode (modified).
func (li *linkedInput) stateAt(p string) (same, modified bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		return false, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Ino != li.ino {
		return false, false
	}
	return true, !fi.ModTime().Equal(li.mtime) || fi.Size() != li.size || fi.Mode() != li.mode
}

// collectOutputs puts every declared output into the store. A missing or
// mistyped output is a stage error naming each.
func (s *stage) collectOutputs() ([]cas.Output, error) {
	// Outputs nested in a directory output are copied, not moved: moving
	// one would take it out of the other.
	adopt := !s.l.opts.KeepSandbox && !nestedOuts(s.job.Outs)
	outs := make([]cas.Output, len(s.job.Outs))
	var missing, bad []string
	// Symlinks first: what they point at may be another output, which is
	// moved into the store in the second pass.
	for _, links := range []bool{true, false} {
		for i, o := range s.job.Outs {
			rel := strings.TrimSuffix(o, "/")
			p := filepath.Join(s.sb.ws, filepath.FromSlash(rel))
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				if !links {
					missing = append(missing, o)
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", o, err)
			}
			if isLink := fi.Mode()&fs.ModeSymlink != 0 && rel == o; isLink != links {
				continue
			}
			out, msg, err := s.collect(o, p, fi, adopt)
			if err != nil {
				return nil, err
			}
			if msg != "" {
				bad = append(bad, msg)
			}
			outs[i] = out
		}
	}
	var msgs []string
	switch len(missing) {
	case 0:
	case 1:
		msgs = append(msgs, "missing declared output "+missing[0])
	default:
		msgs = append(msgs, "missing declared outputs "+strings.Join(missing, ", "))
	}
	msgs = append(msgs, bad...)
	if len(msgs) > 0 {
		return nil, stageErrorf("%s", strings.Join(msgs, "; "))
	}
	return outs, nil
}

// collect stores the declared output o, found at p. A wrong output is
// described by msg; err is an infrastructure failure.
func (s *stage) collect(o, p string, fi fs.FileInfo, adopt bool) (out cas.Output, msg string, err error) {
	st := s.l.opts.Store
	rel := strings.TrimSuffix(o, "/")
	switch {
	case rel != o:
		if !fi.IsDir() {
			return out, fmt.Sprintf("declared output %s is not a directory", o), nil
		}
		if adopt && s.bwrapIDs() {
			if err := s.l.disown(p); err != nil {
				return out, "", fmt.Errorf("output %s: %w", o, err)
			}
		}
		d, t, err := st.PutTree(p, adopt)
		if err != nil {
			// Absolute or escaping symlinks, special files: the stage's doing.
			return out, fmt.Sprintf("declared output %s: %v", o, err), nil
		}
		var size int64
		for _, e := range t.Entries {
			size += e.Size
		}
		return cas.Output{Path: rel, Digest: d, Size: size, IsDir: true}, "", nil
	case fi.IsDir():
		return out, fmt.Sprintf("declared output %s is a directory (declare it as %s/)", o, o), nil
	case fi.Mode().IsRegular():
		put := st.PutFile
		if adopt {
			put = st.AdoptFile
			if s.bwrapIDs() {
				if err := s.l.disown(p); err != nil {
					return out, "", fmt.Errorf("output %s: %w", o, err)
				}
			}
		}
		d, n, err := put(p)
		if err != nil {
			return out, "", fmt.Errorf("output %s: %w", o, err)
		}
		return cas.Output{Path: rel, Digest: d, Size: n, Exec: fi.Mode()&0o111 != 0}, "", nil
	case fi.Mode()&fs.ModeSymlink != 0:
		// The output is what the link points at, which must be a file of
		// the sandbox (another output, an input): copied, not moved.
		target, err := s.resolveLink(p)
		if err != nil {
			return out, fmt.Sprintf("declared output %s: %v", o, err), nil
		}
		tfi, err := os.Stat(target)
		if err != nil || !tfi.Mode().IsRegular() {
			return out, fmt.Sprintf("declared output %s is a symlink to something that is not a file", o), nil
		}
		d, n, err := st.PutFile(target)
		if err != nil {
			return out, "", fmt.Errorf("output %s: %w", o, err)
		}
		return cas.Output{Path: rel, Digest: d, Size: n, Exec: tfi.Mode()&0o111 != 0}, "", nil
	}
	return out, fmt.Sprintf("declared output %s is not a regular file (%s)", o, fi.Mode().Type()), nil
}

// resolveLink follows the symlink at p to a host path inside the sandbox's
// workspace. Absolute targets are read as the stage saw them (under
// /mc/ws when isolated); an output must not pull in a host file.
func (s *stage) resolveLink(p string) (string, error) {
	ws := s.sb.ws
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// Symlinked directories on the way are the kernel's to follow,
			// as long as the end stays inside the workspace.
			real, err1 := filepath.EvalSymlinks(p)
			realWS, err2 := filepath.EvalSymlinks(ws)
			if err1 != nil || err2 != nil || !within(real, realWS) {
				return "", fmt.Errorf("symlink does not resolve to a file of the workspace")
			}
			return real, nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		switch {
		case !filepath.IsAbs(t):
			t = filepath.Join(filepath.Dir(p), t)
		case s.isolated && within(filepath.Clean(t), sandboxWS):
			t = filepath.Join(ws, strings.TrimPrefix(filepath.Clean(t), sandboxWS))
		}
		t = filepath.Clean(t)
		if !within(t, ws) {
			return "", fmt.Errorf("symlink points outside the workspace (%s)", t)
		}
		p = t
	}
	return "", errors.New("too many levels of symbolic links")
}

// nestedOuts reports whether an output lies inside a directory output.
func nestedOuts(outs []string) bool {
	for _, d := range outs {
		if !strings.HasSuffix(d, "/") {
			continue
		}
		for _, o := range outs {
			if o != d && strings.HasPrefix(o, d) {
				return true
			}
		}
	}
	return false
}
