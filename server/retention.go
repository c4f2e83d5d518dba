package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// pruneEvery is how often retention runs (besides at start) unless
// Config.PruneEvery says otherwise.
const pruneEvery = time.Hour

// startPruner prunes old runs at start and then periodically, until the
// server stops. Without KeepAge or KeepRuns it does nothing.
func (s *Server) startPruner() {
	if s.cfg.KeepAge <= 0 && s.cfg.KeepRuns <= 0 {
		return
	}
	every := s.cfg.PruneEvery
	if every <= 0 {
		every = pruneEvery
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if _, err := s.prune(s.life); err != nil && s.life.Err() == nil {
				s.logf("retention: %v", err)
			}
			select {
			case <-s.life.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// prune removes the ended runs older than KeepAge or beyond the newest
// KeepRuns: their rows, stages, events (the logs are events) and work
// directories. Queued and running runs are never removed, however old:
// the database says so in the deleting transaction, and runs this server
// holds in its queue or workers are skipped besides. It returns the ids
// removed.
func (s *Server) prune(ctx context.Context) ([]int64, error) {
	var before time.Time
	if s.cfg.KeepAge > 0 {
		before = s.cfg.Now().Add(-s.cfg.KeepAge)
	}
	ids, err := s.st.prunableRuns(ctx, before, s.cfg.KeepRuns)
	if err != nil {
		return nil, err
	}
	var removed []int64
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		_, running := s.active[id]
		busy := running || slices.Contains(s.pending, id)
		s.mu.Unlock()
		if busy {
			continue
		}
		ok, err := s.st.deleteRun(ctx, id)
		if err != nil {
			return removed, err
		}
		if !ok {
			continue
		}
		if err := os.RemoveAll(s.workDir(id)); err != nil {
			s.logf("retention: run %d: %v", id, err)
		}
		removed = append(removed, id)
	}
	if len(removed) > 0 {
		s.logf("retention: removed %d runs (%d to %d)", len(removed), removed[0], removed[len(removed)-1])
	}
	if ctx.Err() == nil {
		if err := s.pruneRepos(ctx); err != nil {
			return removed, err
		}
	}
	return removed, ctx.Err()
}

// workDir is where run id was checked out (run.go's build).
func (s *Server) workDir(id int64) string {
	return filepath.Join(s.cfg.DataDir, "work", fmt.Sprint(id))
}
