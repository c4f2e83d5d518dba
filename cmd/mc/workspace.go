package main

import (
	"context"

	"github.com/mc-build/mc/session"
)

// openSession opens the workspace around the invoking directory with the
// cache's trusted tier.
func openSession(ctx context.Context, e *env, cacheDir string) (*session.Session, error) {
	return session.Open(ctx, session.Options{Dir: e.dir, CacheDir: cacheDir, Getenv: e.getenv})
}
