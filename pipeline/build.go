package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/outdir"
	"github.com/mc-build/mc/report"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
	"github.com/mc-build/mc/stagelog"
	"github.com/mc-build/mc/ui"
)

// BuildOptions are the settings of one `mc build` or `mc test`.
type BuildOptions struct {
	Options
	Command  string   // "build" or "test": names the run and the summary
	Test     bool     // mc test: test stages too, the tests' summary, exit 4 without tests
	Patterns []string // as given (relative to Env.Dir)
	// AffectedSince keeps only the stages affected by changes since this
	// git revision.
	AffectedSince string
	// Sink shows the events; Summary prints the text summary to Stderr
	// after the build.
	Sink    event.Sink
	Summary bool
	Report  string // also stream the events to the mc serve at this URL
	Explain bool   // tell why each stage that ran had to run
	Profile string // write a Chrome trace of the build to this file
	History int    // entries of each stage's run history to keep
	// Check runs nothing: Preflight says whether the build has what it
	// needs (mc build --check).
	Check bool
}

// Build is `mc build` (and `mc test`): open, evaluate, select, run, record,
// show the summary. A failed stage is errkind.ErrStageFailed, returned
// after the summary.
func Build(ctx context.Context, env Env, o BuildOptions) error {
	if o.Untrusted && pushRequested(o.Push, o.Deploy) {
		// Deploying and pushing write what trusted systems use.
		return errkind.Usagef("--untrusted builds deploy nothing and push no images: drop --deploy and --push")
	}
	p, err := Open(ctx, env, o.Options)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	obs, sink, err := newObserver(observeFlags{explain: o.Explain, profile: o.Profile, history: o.History}, o.JSON, o.Sink)
	if err != nil {
		return err
	}
	defer obs.flush()
	token, _ := env.Getenv("MC_REPORT_TOKEN")
	command := historyCommand(o.Command, o.Patterns)
	reporter, sink := report.New(ctx, report.Options{URL: o.Report, Token: token, Stderr: env.Stderr, Dir: env.Dir, Command: command}, sink)
	defer reporter.Close()
	p.sink = sink

	obs.startPhase("evaluate")
	ev, err := p.Evaluate(ctx, o.Patterns)
	if err != nil {
		return err
	}
	roots, err := p.Select(ctx, ev, o.Test, o.AffectedSince)
	if err != nil {
		return err
	}
	if o.Check {
		ag, err := ev.Graph.Actions(roots)
		if err != nil {
			return err
		}
		return Preflight(env, ag, registrySetting(env.Getenv, o.Registry, p.s.WS), pushRequested(o.Push, o.Deploy), o.Deploy)
	}
	// mc serve draws the graph of --output=json and --report builds.
	res, err := p.Run(ctx, ev.Graph, roots, RunOptions{Sink: sink, Phase: obs.startPhase, GraphEvent: o.JSON || o.Report != ""})
	if err != nil {
		return err
	}
	ag, rep := res.Actions, res.Report
	obs.record(ctx, p, command, o.NoCache, ag, rep)
	if err := stagelog.Store(ctx, p.s.Store, p.s.DB, p.s.Root, command, ag, rep, res.Logs); err != nil {
		p.warn(fmt.Sprintf("storing the logs of failed stages for mc log: %v", err))
	}
	if o.Summary {
		PrintSummary(env, o.Command, res, o.Test)
	}
	if !res.Isolated {
		p.warn("stages ran WITHOUT a sandbox (--sandbox=auto and none works here): their results stay on this machine; install bubblewrap, or use --sandbox=required to refuse")
	}
	if err := obs.finish(env); err != nil {
		return err
	}
	if res.OutErr != nil {
		return errkind.Infra(fmt.Errorf("writing mc-out: %w", res.OutErr))
	}
	if rep.Failed > 0 || rep.Skipped > 0 {
		return errkind.ErrStageFailed
	}
	return nil
}

// termCols is the width of the terminal w is, or 0.
func termCols(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	c, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return c
}

// anyTest reports whether roots hold a test stage.
func anyTest(g *graph.Graph, roots []graph.Label) bool {
	for _, l := range roots {
		if t := g.Targets[l]; t != nil && t.Test {
			return true
		}
	}
	return false
}

func lockWorkspace(ctx context.Context, stderr io.Writer, root string) (func() error, error) {
	dir := filepath.Join(root, "mc-out")
	// A checkout may hold mc-out as a link to anywhere: never write
	// through it (outdir.NoSymlinks says the same of what is below).
	if err := outdir.NoSymlinks(dir, dir); err != nil {
		return nil, errkind.Usagef("%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errkind.Infra(err)
	}
	lockPath := filepath.Join(dir, ".lock")
	unlock, ok, err := flock.TryLock(lockPath)
	if err != nil {
		return nil, errkind.Infra(err)
	}
	if ok {
		return unlock, nil
	}
	fmt.Fprintln(stderr, "mc: another mc command is using this workspace; waiting for it to finish...")
	unlock, err = flock.Lock(ctx, lockPath)
	if err != nil {
		return nil, err
	}
	return unlock, nil
}

// selectRoots turns patterns into the stages to build. Patterns (//..., :all)
// match the stages a command runs: `build` skips test stages, both skip
// deploy stages without --deploy. A label names one target explicitly and
// may not name a stage the command would not run.
func selectRoots(g *graph.Graph, pats []graph.Pattern, args []string, test, deploy bool, isSource func(pkg, name string) bool) ([]graph.Label, error) {
	namedSource := false
	seen := map[graph.Label]bool{}
	var roots []graph.Label
	add := func(l graph.Label) {
		if !seen[l] {
			seen[l] = true
			roots = append(roots, l)
		}
	}
	wanted := func(t *graph.Target) bool {
		if t.Kind == graph.KindImage {
			return true
		}
		if t.Kind != graph.KindStage {
			return false
		}
		if t.Deploy && !deploy {
			return false
		}
		return test || !t.Test
	}
	labels := make([]graph.Label, 0, len(g.Targets))
	for l := range g.Targets {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Less(labels[j]) })
	for i, p := range pats {
		if p.Kind != graph.PatternTarget {
			for _, l := range labels {
				if p.MatchesPkg(l.Pkg) && wanted(g.Targets[l]) {
					add(l)
				}
			}
			continue
		}
		l := p.Label
		t, ok := g.Targets[l]
		if !ok {
			if st, isOut := g.Outputs[graph.Label{Pkg: l.Pkg, Name: strings.TrimSuffix(l.Name, "/")}]; isOut {
				t = st
			} else if isSource(l.Pkg, l.Name) {
				// A source file is a target too (SPEC §2): there is
				// nothing to build for it.
				namedSource = true
				continue
			} else {
				pkg := g.Packages[l.Pkg]
				var cands []string
				for _, x := range pkg.Targets {
					cands = append(cands, ":"+x.Label.Name)
				}
				return nil, errkind.Usagef("%s names nothing: no target %q in %s%s", args[i], l.Name, pkg.File, errkind.Suggest(graph.Closest(":"+l.Name, cands)))
			}
		}
		switch {
		case t.Deploy && !deploy:
			return nil, errkind.Usagef("%s is a deploy stage: it runs only with --deploy", t.Label)
		case t.Test && !test:
			return nil, errkind.Usagef("%s is a test stage: run it with mc test", t.Label)
		}
		add(t.Label)
	}
	if len(roots) == 0 && !test && !namedSource {
		return nil, errkind.Usagef("no stages match %s", strings.Join(args, " "))
	}
	return roots, nil
}

// PrintSummary writes the end of a build's text output to e.Stderr: with
// test, each test's result; the counts, wall time and critical path; the
// shared cache's line; the failed stages with the end of their logs. name
// is the command ("build", "test").
func PrintSummary(e Env, name string, res *Result, test bool) {
	ag, rep, logs := res.Actions, res.Report, res.Logs
	w := e.Stderr
	if test {
		var tests []*graph.Action
		for _, a := range ag.Actions {
			if a.Target.Test {
				tests = append(tests, a)
			}
		}
		pass, fail := 0, 0
		for _, a := range tests {
			o := rep.Outcomes[a]
			status := "NOT RUN"
			switch {
			case o == nil:
			case o.Status == sched.StatusBuilt:
				status, pass = "PASSED", pass+1
			case o.Status == sched.StatusCached:
				status, pass = "PASSED (cached)", pass+1
			case o.Status == sched.StatusFailed:
				status, fail = "FAILED", fail+1
			}
			fmt.Fprintf(w, "%-40s %s\n", a.Label(), status)
		}
		fmt.Fprintf(w, "Tests: %d passed, %d failed, %d not run\n", pass, fail, len(tests)-pass-fail)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d built, %d cached, %d failed", strings.ToUpper(name[:1])+name[1:], rep.Built, rep.Cached, rep.Failed)
	if rep.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", rep.Skipped)
	}
	fmt.Fprintf(&b, " in %s", ui.Duration(rep.Wall))
	if len(rep.CriticalPath) > 0 {
		var ls []string
		for _, a := range rep.CriticalPath {
			ls = append(ls, a.Label().String())
		}
		if len(ls) > 4 {
			ls = append(ls[:2], "…("+fmt.Sprint(len(ls)-3)+" more)…", ls[len(ls)-1])
		}
		fmt.Fprintf(&b, " · critical path %s: %s", ui.Duration(rep.CriticalTime), strings.Join(ls, " -> "))
	}
	line := b.String()
	if cols := termCols(w); cols > 0 {
		// Wrapped at spaces, not by the terminal in the middle of a word.
		line = ui.Wrap(line, cols-1)
	}
	fmt.Fprintln(w, line)
	printRemoteSummary(w, rep.Remote)
	stagelog.Print(w, e.Getenv, ag, rep, logs)
}

// filterAffected keeps the roots that are affected by the changes since
// rev: they, or something they depend on, changed (affected(REV) of mc
// query, within the selected roots). rev "" keeps every root. The graph
// holds every dependency of the roots, which is all this needs: no other
// package is loaded.
func filterAffected(ctx context.Context, s *session.Session, g *graph.Graph, roots []graph.Label, rev string) ([]graph.Label, error) {
	if rev == "" {
		return roots, nil
	}
	chs, err := s.Changes(ctx, rev)
	if err != nil {
		return nil, err
	}
	return g.DependingOn(roots, g.ChangedTargets(chs, s.Eval.IsPackage)), nil
}
