package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/helptext"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/vcs"
)

// Exit statuses (SPEC §6).
const (
	exitOK          = 0
	exitFailed      = 1 // a stage or test failed
	exitUsage       = 2 // bad usage, bad BUILD files, unknown targets
	exitInfra       = 3 // cache, registry, runners unreachable
	exitNoTests     = 4 // mc test matched no test targets (as Bazel)
	exitInterrupted = 130
)

// usagef is errkind.Usagef: a mistake on the command line (exit 2).
func usagef(format string, args ...any) error { return errkind.Usagef(format, args...) }

// infraError is a failure of something mc relies on that cmd/mc itself
// finds (serve, agent); libraries return *errkind.InfraError. Both exit 3.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// env is what a subcommand sees of the process: streams, environment, and
// the directory it runs in. Tests run Main in-process, so nothing here may be
// read from globals.
type env struct {
	stdout, stderr io.Writer
	dir            string
	getenv         func(string) (string, bool)
	// flagsSeen, when set, receives a command's flag set instead of its
	// --help text being printed: how completion learns a command's flags.
	flagsSeen func(*pflag.FlagSet)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"build", "build targets and everything they need", runBuild},
		{"test", "build, then run the test stages among the targets", runTest},
		{"watch", "build (--test: test) the targets, then rebuild what each saved file affects", runWatch},
		{"query", "query the target graph (deps, rdeps, affected, ...)", runQuery},
		{"explain", "why a stage would run (or is cached): its key's parts and what changed", runExplain},
		{"cache", "inspect and trim the local and remote cache (stats, gc, purge)", runCache},
		{"serve", "the CI server and web interface (GitHub webhooks, run history)", runServe},
		{"fmt", "format BUILD.mc, WORKSPACE.mc and .star files (--check: list unformatted ones)", runFmt},
		{"init", "start a workspace in the current directory", runInit},
		{"version", "print the version", runVersion},
		{"agent", "the runner agent started on remote machines (by their bootstrap)", runAgent},
		{"runners", "remote runners of this workspace: list, reap (terminate strays)", runRunners},
		{"log", "print a stage's last log (--failed: those of the last build's failures)", runLog},
		{"help", "help for a command or a topic (labels, query)", runHelp},
		{"completion", "print a shell completion script (bash, zsh, fish)", runCompletion},
	}
}

// Main runs mc with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		// A panic is a bug in mc; the user gets one line, not a stack trace.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "mc: internal error: %v (please report this bug; set MC_TRACEBACK=1 for details)\n", r)
			if os.Getenv("MC_TRACEBACK") == "1" {
				fmt.Fprintf(stderr, "%s", debug.Stack())
			}
			code = exitInfra
		}
	}()
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "mc: %v\n", err)
		return exitInfra
	}
	// -C DIR before the command, as in make and git.
	for len(args) >= 2 && args[0] == "-C" {
		dir = resolveDir(dir, args[1])
		args = args[2:]
	}
	if len(args) == 0 {
		// A mistake: the usage goes with the other errors, to stderr.
		printUsage(stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		fmt.Fprintf(stderr, "mc: -C %s: no such directory\n", dir)
		return exitUsage
	}
	e := &env{stdout: stdout, stderr: stderr, dir: dir, getenv: os.LookupEnv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args[0] == "__complete" {
		_ = runComplete(ctx, e, args[1:])
		return exitOK
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = &c
		}
	}
	if cmd == nil {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "mc: unknown flag %s before the command (only -C DIR, --help and --version go there)\nRun 'mc help' for the list of commands.\n", args[0])
			return exitUsage
		}
		fmt.Fprintf(stderr, "mc: unknown command %q%s\nRun 'mc help' for the list of commands.\n", args[0], suggest(graph.Closest(args[0], names)))
		return exitUsage
	}
	return exitCode(stderr, cmd.run(ctx, e, args[1:]))
}

func resolveDir(cur, d string) string {
	if strings.HasPrefix(d, "/") {
		return d
	}
	return cur + "/" + d
}

func suggest(names []string) string { return errkind.Suggest(names) }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "mc — build and CI/CD for monorepos\n\nUsage: mc [-C DIR] COMMAND [FLAGS] [ARGS]\n\nCommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Help topics:
  labels     label and pattern syntax (//pkg:name, :name, //pkg/...)
  query      the query language: functions, operators, output formats

Global flags (before the command):
  -C DIR     run as if mc was started in DIR
  --version  print the version

`)
	fmt.Fprint(w, helptext.ExitCodes)
	fmt.Fprintln(w, "\nRun 'mc help COMMAND' or 'mc COMMAND --help' for a command's description,\nflags and examples.")
}

// exitCode prints err (if any) and maps it to an exit status.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	var (
		le  *lang.Error
		ge  *graph.Error
		lbe *graph.LabelError
		ue  *errkind.UsageError
		ie  *errkind.InfraError
		cie *infraError
		qe  *graph.QueryError
		ve  *vcs.Error
		nte *errkind.NoTestsError
	)
	switch {
	case errors.Is(err, errkind.ErrStageFailed):
		return exitFailed
	case errors.As(err, &nte):
		fmt.Fprintf(stderr, "mc: %v\n", err)
		return exitNoTests
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "mc: interrupted")
		return exitInterrupted
	case errors.As(err, &le), errors.As(err, &ge):
		fmt.Fprintln(stderr, err)
		return exitUsage
	case errors.As(err, &qe), errors.As(err, &ve):
		// A mistake in a query expression, or a revision git does not know.
		fmt.Fprintf(stderr, "mc: %v\n", err)
		return exitUsage
	case errors.As(err, &lbe), errors.As(err, &ue), errors.Is(err, lang.ErrNoWorkspace):
		fmt.Fprintf(stderr, "mc: %v\n", err)
		return exitUsage
	case errors.As(err, &ie), errors.As(err, &cie):
		fmt.Fprintf(stderr, "mc: %v\n", err)
		return exitInfra
	}
	fmt.Fprintf(stderr, "mc: %v\n", err)
	return exitInfra
}

// newFlags returns a FlagSet whose errors become usage errors (exit 2).
func newFlags(e *env, name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	// --help is asked for: it goes to stdout, and exits 0.
	fs.Usage = func() {
		if e.flagsSeen != nil {
			e.flagsSeen(fs)
			return
		}
		printCmdHelp(e.stdout, name, usage, fs)
	}
	return fs
}

func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%s: %v%s", fs.Name(), err, flagSuggestion(fs, err))
	}
	return nil
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "mc %s\n", version())
	return nil
}

// buildVersion is set with -ldflags "-X main.buildVersion=..." by release builds.
var buildVersion = ""
