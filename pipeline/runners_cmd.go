package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/runner"
	"github.com/mc-build/mc/session"
)

// RunnersQuery is what `mc runners list|reap` asks.
type RunnersQuery struct {
	Sub      string // "list" or "reap"
	Kind     string // local or ec2; "": MC_RUNNERS, WORKSPACE.mc
	CacheURL string // the shared cache the runs use; "": MC_CACHE, WORKSPACE.mc
	All      bool   // reap every runner of the workspace
	Stale    time.Duration
}

// Runners is `mc runners list|reap` for the workspace of s: it lists the
// workspace's runner machines (strays marked) on e.Stdout, or terminates
// those that should not be running (their run is over, or their
// mc:expires-at has passed; q.All: every one).
func Runners(ctx context.Context, e Env, s *session.Session, q RunnersQuery) error {
	k, err := RunnersSetting(e.Getenv, s.WS, q.Kind)
	if err != nil {
		return err
	}
	if k == "none" {
		return errkind.Usagef("runners %s: which runners? pass --runners=local or --runners=ec2", q.Sub)
	}
	url := RemoteURL(e.Getenv, s.WS, q.CacheURL)
	if url == "" {
		return errkind.Usagef("runners %s needs the shared cache the runs use (cache = \"s3://…\", --cache or MC_CACHE)", q.Sub)
	}
	prov, err := NewProvider(ctx, e.Getenv, s, k)
	if err != nil {
		return err
	}
	ep, _ := e.Getenv("MC_S3_ENDPOINT")
	objs, err := runner.OpenObjects(ctx, url, ep, e.Getenv)
	if err != nil {
		return errkind.Usagef("shared cache: %v", err)
	}
	o := runner.ReapOptions{Provider: prov, Objects: objs, Workspace: RunnerWorkspace(s), All: q.All && q.Sub == "reap", Stale: q.Stale}
	if q.Sub == "list" {
		sts, err := runner.Survey(ctx, o)
		if err != nil {
			return errkind.Infra(err)
		}
		live := 0
		for _, st := range sts {
			if !st.Live() {
				continue
			}
			live++
			note := "in use"
			if st.Stray != "" {
				note = "STRAY: " + st.Stray
			}
			fmt.Fprintf(e.Stdout, "%s\t%s\t%s\t%s\texpires %s\t%s\n", st.ID, st.State, st.Tags[runner.TagStage],
				st.Tags[runner.TagRun], st.Tags[runner.TagExpiresAt], note)
		}
		fmt.Fprintf(e.Stderr, "%d %s runners running for workspace %s\n", live, k, o.Workspace)
		return nil
	}
	reaped, err := runner.Reap(ctx, o)
	for _, st := range reaped {
		fmt.Fprintf(e.Stdout, "terminated %s (%s): %s\n", st.ID, st.Tags[runner.TagStage], st.Stray)
	}
	if err != nil {
		return errkind.Infra(err)
	}
	fmt.Fprintf(e.Stderr, "%d %s runners terminated\n", len(reaped), k)
	return nil
}
