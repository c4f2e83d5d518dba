package session

import (
	"context"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/history"
)

// History keys. The run history (what `--explain` and `mc explain` compare
// with) is kept per workspace root unless MC_HISTORY_KEY names it: mc serve
// builds a repository in worktrees whose paths say nothing about the
// branch, so it passes "owner/repo@branch" and the history follows the
// branch from one worktree to the next. MC_HISTORY_BASE is where a key
// without history yet starts from (the default branch's key): the first
// run of a new branch or pull request says what changed since the default
// branch's last run, not "no previous run".
const (
	envHistoryKey  = "MC_HISTORY_KEY"
	envHistoryBase = "MC_HISTORY_BASE"
)

// historyScope is the history key of the workspace at root and its base.
func historyScope(getenv func(string) (string, bool), root string) (scope, base string) {
	scope = root
	if getenv == nil {
		return scope, ""
	}
	if v, ok := getenv(envHistoryKey); ok && v != "" {
		scope = v
	}
	if v, ok := getenv(envHistoryBase); ok && v != scope {
		base = v
	}
	return scope, base
}

// SeedHistory starts s's history key from its base's latest entries when
// it has none yet. An untrusted build's history is in its own tier; its
// base is read from the trusted tier (read only, like its results).
func (s *Session) SeedHistory(ctx context.Context) error {
	if s.HistoryBase == "" {
		return nil
	}
	from := s.DB
	if s.Trusted != nil {
		from = s.Trusted
	}
	return history.SeedHistory(ctx, s.DB, s.Scope, from, s.HistoryBase)
}

// HistoryParts reads key preimages from s's tier, then, for an untrusted
// build whose history started from the trusted tier's, from that tier.
type HistoryParts struct{ S *Session }

// KeyParts finds the stored key preimage of a history entry.
func (h HistoryParts) KeyParts(ctx context.Context, key cas.Digest) ([]byte, error) {
	b, err := history.KeyParts(ctx, h.S.DB, key)
	if err != nil || b != nil || h.S.Trusted == nil {
		return b, err
	}
	return history.KeyParts(ctx, h.S.Trusted, key)
}
