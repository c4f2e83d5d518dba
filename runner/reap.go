package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"
)

// ReapOptions configure Survey and Reap.
type ReapOptions struct {
	Provider  Provider
	Objects   Objects
	Workspace string
	// All terminates every live instance of the workspace, runs in
	// progress and kept runners included. Otherwise a kept runner (tagged
	// mc:keep) is a stray only once expired.
	All bool
	// Stale is how long a coordinator may stay silent before its run
	// counts as over (1m); on the coordinator's own host a dead process
	// ends its run at once.
	Stale time.Duration
}

// Status is one instance and what the reaper makes of it.
type Status struct {
	Instance
	// Stray says why the instance should not be running ("" if it should):
	// its run is over, or its mc:expires-at has passed.
	Stray string
}

// Survey lists the workspace's instances and judges each.
func Survey(ctx context.Context, o ReapOptions) ([]Status, error) {
	if o.Stale <= 0 {
		o.Stale = time.Minute
	}
	insts, err := o.Provider.List(ctx, o.Workspace)
	if err != nil {
		return nil, fmt.Errorf("listing %s runners: %w", o.Provider.Name(), err)
	}
	host, _ := os.Hostname()
	now := time.Now()
	runs := map[string]string{} // run -> why it is over ("" alive)
	var out []Status
	for _, in := range insts {
		st := Status{Instance: in}
		if in.Live() {
			switch exp := in.ExpiresAt(); {
			case o.All:
				st.Stray = "--all"
			case !exp.IsZero() && now.After(exp):
				st.Stray = "expired at " + exp.Format(time.RFC3339)
			case in.Tags[TagKeep] == "true":
				// Kept for a user (--keep-runner): its TTL ends it.
			default:
				run := in.Tags[TagRun]
				if in.Tags[TagTier] == UntrustedTier {
					run = UntrustedTier + "/" + run // runs of either tier are told apart
				}
				why, ok := runs[run]
				if !ok {
					why, err = runOver(ctx, o, in.Tags[TagRun], in, host, now)
					if err != nil {
						return nil, err
					}
					runs[run] = why
				}
				st.Stray = why
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// runOver says why run is over, "" when it is still going.
func runOver(ctx context.Context, o ReapOptions, run string, in Instance, host string, now time.Time) (string, error) {
	if run == "" {
		return "no mc:run tag", nil
	}
	if in.Tags[TagTier] == UntrustedTier {
		o.Objects = untrustedObjects(o.Objects)
	}
	if _, err := o.Objects.Get(ctx, RunDir(run)+objDone); err == nil {
		return "run " + run + " is over", nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("checking run %s: %w", run, err)
	}
	b, err := o.Objects.Get(ctx, RunDir(run)+objCoordinator)
	if errors.Is(err, ErrNotFound) {
		if now.Sub(in.Launched) > o.Stale {
			return "run " + run + " has no coordinator", nil
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checking run %s: %w", run, err)
	}
	var beat CoordinatorBeat
	if err := json.Unmarshal(b, &beat); err != nil {
		return "run " + run + ": undecodable coordinator heartbeat", nil
	}
	if beat.Host == host && !procAlive(beat.PID, beat.Start) {
		return fmt.Sprintf("run %s: its coordinator (pid %d) is gone", run, beat.PID), nil
	}
	if now.Sub(beat.Time) > o.Stale {
		return fmt.Sprintf("run %s: its coordinator has been silent since %s", run, beat.Time.Format(time.RFC3339)), nil
	}
	return "", nil
}

// Reap terminates the strays among the workspace's instances and returns
// them.
func Reap(ctx context.Context, o ReapOptions) ([]Status, error) {
	all, err := Survey(ctx, o)
	if err != nil {
		return nil, err
	}
	var strays []Status
	var ids []string
	for _, s := range all {
		if s.Stray != "" {
			strays = append(strays, s)
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := o.Provider.Terminate(ctx, ids); err != nil {
		return strays, fmt.Errorf("terminating %d runners: %w", len(ids), err)
	}
	return strays, nil
}
