package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// The warm pool. Every stage still gets a machine nobody used before, but
// machines are launched ahead of the stages that will take them: while N
// stages run, spare runners boot (their agents wait for a job, polling for
// runs/<run>/<job>/job), so a stage dispatched when another finishes finds
// a booted machine instead of paying a boot on its slot. A build pays about
// one boot, not one per stage.
//
// How many spares: enough that one has finished booting whenever a stage
// is dispatched. Stages are dispatched at about active/T per second (T: a
// stage's time on its runner) and a spare needs B to boot, so about
// active×B/T spares must be booting at any time; the pool keeps 1.25× that
// plus one, from running estimates of B (launch to the agent's first
// heartbeat) and T. Before both are known it keeps min(Warm, MaxInstances).
// Always at most Warm (the cap, a cost bound) and at most remaining - active,
// where remaining is the number of actions not finished yet (the
// scheduler's Ahead) and active the jobs holding a runner: no spare is
// launched for work that is not there, and the last stages of a build
// launch none. Cache hits count as remaining (nobody knows in advance), so
// a build with many hits may end spares unused: the price of the pool (each
// costs its boot's worth of machine time, which a stage's own machine costs
// too), and Warm = 0 turns it off. A spare idles about B/4 before a stage
// takes it, so with slow stages the pool stays small.
//
// Spares are per machine: instance type, AMI and disk size (a stage's
// `machine` hints). A stage takes the oldest spare of its machine, or
// launches one of its own; each take launches a replacement of the same
// machine, and the pool's own top-ups (from Ahead) use the machine of the
// latest stage. A --keep-runner stage always gets a machine of its own
// (its bootstrap differs).

// spare is one runner launched ahead of its job.
type spare struct {
	jobID    string        // its directory under runs/<run>/
	machine  string        // machineKey of its hints
	ready    chan struct{} // closed once Launch returned
	id       string        // instance ID (after ready, when err is nil)
	err      error
	launched time.Time
}

// machineKey names a machine shape: spares are interchangeable within one.
func machineKey(hints map[string]string) string {
	var keys []string
	for k, v := range hints {
		if k == "instance_type" || k == "ami" || k == "disk_gb" {
			keys = append(keys, k+"="+v)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// Ahead implements sched.Lookahead: the scheduler's count of actions not
// finished yet, which bounds how many spares are worth launching.
func (e *Executor) Ahead(remaining int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remaining = remaining
	e.topUp(e.lastMachine, e.lastHints)
}

// topUp launches spares of machine until the pool holds as many as the
// remaining work can use. Called with e.mu held; launches run in the
// background.
func (e *Executor) topUp(machine string, hints map[string]string) {
	want := min(e.o.Warm, max(e.o.MaxInstances, 1))
	if e.bootEst > 0 && e.stageEst > 0 {
		n := float64(max(e.active, 1))
		want = int(math.Ceil(1.25*n*e.bootEst.Seconds()/e.stageEst.Seconds())) + 1
	}
	want = min(want, e.o.Warm, e.remaining-e.active)
	if e.o.Debug != nil {
		e.o.Debug("pool: want %d spares (have %d, active %d, remaining %d, boot %s, stage %s)", want, e.spareCount, e.active, e.remaining, e.bootEst.Round(time.Millisecond), e.stageEst.Round(time.Millisecond))
	}
	for e.spareCount < want && !e.closed && !time.Now().Before(e.spareBackoff) {
		e.seq++
		sp := &spare{jobID: fmt.Sprintf("w%05d", e.seq), machine: machine, ready: make(chan struct{})}
		e.spares[machine] = append(e.spares[machine], sp)
		e.spareCount++
		e.bg.Add(1)
		go e.launchSpare(sp, hints)
	}
}

// launchSpare launches sp once: a spare that cannot be launched is not
// retried here (the stage that would have taken it launches its own, with
// the capacity retries); a capacity error pauses top-ups for a while.
func (e *Executor) launchSpare(sp *spare, hints map[string]string) {
	defer e.bg.Done()
	defer close(sp.ready)
	ctx, cancel := context.WithTimeout(e.bgCtx, 2*time.Minute)
	defer cancel()
	if err := e.ensureBinary(ctx); err != nil {
		sp.err = err
		return
	}
	spec, err := e.launchSpec(ctx, sp.jobID, "", false, hints)
	if err == nil {
		sp.launched = time.Now()
		sp.id, err = e.o.Provider.Launch(ctx, spec)
	}
	if err != nil {
		sp.err = err
		if e.bgCtx.Err() != nil {
			return // the run is over
		}
		e.mu.Lock()
		if errors.Is(err, ErrCapacity) {
			e.spareBackoff = time.Now().Add(e.o.CapacityBackoff)
		}
		e.mu.Unlock()
		if errors.Is(err, ErrCapacity) {
			e.notify("spare runner: %v; no spares for %s (stages launch their own meanwhile)", err, e.o.CapacityBackoff)
		} else {
			e.notify("spare runner: %v (stages launch their own)", err)
		}
		return
	}
	e.mu.Lock()
	e.launched[sp.id] = true
	closed := e.closed
	e.mu.Unlock()
	if closed {
		// Close may have reconciled before this launch returned.
		tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.o.Provider.Terminate(tctx, []string{sp.id})
		cancel()
	}
}

// ewma folds sample into the running estimate est (0: none yet).
func ewma(est, sample time.Duration) time.Duration {
	if est == 0 {
		return sample
	}
	return (4*est + sample) / 5
}

// observeBoot records how long a runner took to boot: seen is when its
// first heartbeat was seen; booted says it was already up when its job was
// assigned at assigned (then only an upper bound is known).
func (e *Executor) observeBoot(launched, assigned, seen time.Time, booted bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if booted {
		if b := assigned.Sub(launched); e.bootEst > b {
			e.bootEst = ewma(e.bootEst, b)
		}
		return
	}
	e.bootEst = ewma(e.bootEst, seen.Sub(launched))
}

// observeStage records a stage's time on its runner, assignment to result.
func (e *Executor) observeStage(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stageEst = ewma(e.stageEst, d)
}

// take returns the oldest spare of machine, once launched, or nil when
// there is none (or it failed to launch). Taking one launches its
// replacement.
func (e *Executor) take(ctx context.Context, machine string, hints map[string]string) (*spare, error) {
	e.mu.Lock()
	e.lastMachine, e.lastHints = machine, hints
	var sp *spare
	if q := e.spares[machine]; len(q) > 0 {
		sp = q[0]
		e.spares[machine] = q[1:]
		e.spareCount--
	}
	e.topUp(machine, hints)
	e.mu.Unlock()
	if sp == nil {
		return nil, nil
	}
	select {
	case <-sp.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if sp.err != nil {
		return nil, nil
	}
	return sp, nil
}
