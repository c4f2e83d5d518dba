package sched

import (
	"context"
	"sync"
	"time"

	"github.com/mc-build/mc/cas"
)

// commitEvery bounds how long a finished stage's result waits before it is
// recorded; commitBatch how many results one transaction takes at most
// before the committer is woken early.
const (
	commitEvery = 100 * time.Millisecond
	commitBatch = 512
)

// committer records action results in batches (group commit): one
// Store.Sync makes every blob written so far durable, then one SQLite
// transaction records the batch. A recorded result therefore never names a
// blob that is not on disk, while a build of ten thousand small stages pays
// for a few hundred syncs instead of one fsync per blob. Dependents within
// the build do not wait for it: they read results from memory.
type committer struct {
	store *cas.Store
	db    *cas.DB
	scope string

	mu      sync.Mutex
	pending []cas.Recorded
	err     error

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newCommitter(store *cas.Store, db *cas.DB, scope string) *committer {
	c := &committer{store: store, db: db, scope: scope,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *committer) add(key cas.Digest, res *cas.ActionResult) {
	c.mu.Lock()
	c.pending = append(c.pending, cas.Recorded{Key: key, Result: res})
	n := len(c.pending)
	c.mu.Unlock()
	if n >= commitBatch {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *committer) loop() {
	defer close(c.done)
	t := time.NewTicker(commitEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			c.flush()
			return
		case <-c.wake:
		case <-t.C:
		}
		c.flush()
	}
}

func (c *committer) flush() {
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := c.store.Sync()
	if err == nil {
		// Not the build's context: results of stages that finished before a
		// Ctrl-C are still worth keeping, and the transaction is short.
		err = c.db.RecordActions(context.Background(), c.scope, batch)
	}
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
}

// close records what is pending and returns the first error.
func (c *committer) close() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
