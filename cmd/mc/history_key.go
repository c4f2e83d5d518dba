package main

import (
	"context"

	"github.com/mc-build/mc/cas"
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
func historyScope(e *env, root string) (scope, base string) {
	scope = root
	if v, ok := e.getenv(envHistoryKey); ok && v != "" {
		scope = v
	}
	if v, ok := e.getenv(envHistoryBase); ok && v != scope {
		base = v
	}
	return scope, base
}

// seedHistory starts s's history key from its base's latest entries when
// it has none yet. An untrusted build's history is in its own tier; its
// base is read from the trusted tier (read only, like its results).
func seedHistory(ctx context.Context, s *session) error {
	if s.historyBase == "" {
		return nil
	}
	from := s.db
	if s.trusted != nil {
		from = s.trusted
	}
	return s.db.SeedHistory(ctx, s.scope, from, s.historyBase)
}

// keyPartsReader finds the stored key preimage of a history entry.
type keyPartsReader interface {
	KeyParts(ctx context.Context, key cas.Digest) ([]byte, error)
}

// historyParts reads key preimages from s's tier, then, for an untrusted
// build whose history started from the trusted tier's, from that tier.
type historyParts struct{ s *session }

func (h historyParts) KeyParts(ctx context.Context, key cas.Digest) ([]byte, error) {
	b, err := h.s.db.KeyParts(ctx, key)
	if err != nil || b != nil || h.s.trusted == nil {
		return b, err
	}
	return h.s.trusted.KeyParts(ctx, key)
}
