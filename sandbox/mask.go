package sandbox

import (
	"bytes"
	"io"
	"sort"
)

// minSecretLen is the shortest secret value that is masked: masking a
// two-letter value would turn every log line into asterisks.
const minSecretLen = 4

// secretMask replaces a masked secret value in a log.
const secretMask = "****"

// maskWriter replaces every secret value written through it by "****",
// including a value split across two writes: it holds back the tail of the
// data that could still be the start of a secret, so its memory is bounded
// by the longest secret. It is not safe for concurrent use; the one reader
// of a stage's output pipe is its only writer.
type maskWriter struct {
	w       io.Writer
	secrets [][]byte // longest first, so the longest match at a position wins
	first   [256]bool
	pending []byte
	out     []byte
}

// newMaskWriter returns a writer masking the values of secrets (of at
// least minSecretLen bytes) on their way to w. With nothing to mask it
// returns w itself.
func newMaskWriter(w io.Writer, secrets map[string]string) io.Writer {
	m := &maskWriter{w: w}
	seen := map[string]bool{}
	for _, v := range secrets {
		if len(v) < minSecretLen || seen[v] {
			continue
		}
		seen[v] = true
		m.secrets = append(m.secrets, []byte(v))
		m.first[v[0]] = true
	}
	if len(m.secrets) == 0 {
		return w
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Write masks p, holding back a possible secret prefix at its end.
func (m *maskWriter) Write(p []byte) (int, error) {
	buf := p
	if len(m.pending) > 0 {
		buf = append(m.pending, p...)
	}
	held := m.mask(buf, false)
	// Copy the tail: buf may alias p, which the caller may reuse.
	m.pending = append(m.pending[:0:0], buf[held:]...)
	if err := m.emit(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the held-back tail, masked: at the end of the stream a
// partial secret can no longer be completed.
func (m *maskWriter) Flush() error {
	if len(m.pending) == 0 {
		return nil
	}
	m.mask(m.pending, true)
	m.pending = m.pending[:0]
	return m.emit()
}

// mask appends buf to m.out with secrets replaced, stopping where the rest
// of buf could be the start of a secret (unless final). It returns how much
// of buf it consumed.
func (m *maskWriter) mask(buf []byte, final bool) int {
	m.out = m.out[:0]
	start := 0 // first byte not yet copied to m.out
	for i := 0; i < len(buf); i++ {
		if !m.first[buf[i]] {
			continue
		}
		n, partial := m.matchAt(buf[i:], final)
		if partial {
			m.out = append(m.out, buf[start:i]...)
			return i
		}
		if n > 0 {
			m.out = append(m.out, buf[start:i]...)
			m.out = append(m.out, secretMask...)
			start = i + n
			i = start - 1
		}
	}
	m.out = append(m.out, buf[start:]...)
	return len(buf)
}

func (m *maskWriter) emit() error {
	if len(m.out) == 0 {
		return nil
	}
	_, err := m.w.Write(m.out)
	return err
}

// matchAt returns the length of the longest secret b starts with. When b
// is instead a proper prefix of a longer secret that more data could
// complete, it reports partial (never when final): the longer secret must
// win over a shorter one that already matches.
func (m *maskWriter) matchAt(b []byte, final bool) (n int, partial bool) {
	for _, s := range m.secrets {
		if bytes.HasPrefix(b, s) {
			return len(s), false
		}
		if !final && len(b) < len(s) && bytes.HasPrefix(s, b) {
			return 0, true
		}
	}
	return 0, false
}
