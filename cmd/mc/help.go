package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/graph"
)

// cmdHelp is what `mc help CMD` and `mc CMD --help` say beyond the flags:
// what the command is for, and examples to copy.
type cmdHelp struct {
	desc     string
	examples []string // "command  # comment" lines
}

// helpTexts are keyed by the name given to newFlags ("build", "cache gc").
var helpTexts = map[string]cmdHelp{
	"build": {
		desc: `Builds the stages the patterns match and everything they depend on. Each stage
runs in a sandbox with only its declared inputs; its outputs appear under
mc-out/<package>/. A stage whose key (command, inputs, image, env, ...) was
seen before is restored from the cache instead of run: its log is not shown
again unless you pass --show-cached-logs or -v.

Patterns are labels (//pkg:name, :name, pkg:name) or sets of them (//...,
//pkg/..., //pkg:all); see 'mc help labels'. A pattern skips test stages
(mc test runs them) and deploy stages (unless --deploy).`,
		examples: []string{
			"mc build //...                  # everything in the workspace",
			"mc build //app:server           # one stage and what it needs",
			"mc build :server                # the same, from the directory app/",
			"mc build -k //...               # keep going after a failure",
			"mc build --affected-since=main  # only what changed since main",
		},
	},
	"test": {
		desc: `Builds what the patterns need, then runs the test stages (test = True) among
them. A passing test is cached like any stage and shows as PASSED (cached)
until one of its inputs changes; failed tests are never cached. Exit status 1
when a test fails, 4 when the patterns match no test stage.`,
		examples: []string{
			"mc test //...              # every test of the workspace",
			"mc test //lib/...          # the tests below lib/",
			"mc test --nocache //lib:t  # run a test again although it passed",
		},
	},
	"query": {
		desc: queryHelp,
		examples: []string{
			"mc query 'deps(//app:server)'",
			"mc query 'rdeps(//..., //lib:core)' --output=label_kind",
			"mc query 'kind(\"stage\", //...) - tests(//...)'",
			"mc query 'somepath(//app:server, //lib:gen)' --output=dot",
			"mc query 'affected(\"origin/main\")'",
		},
	},
	"explain": {
		desc: `Shows the parts of a stage's key, computed without running anything, and which
of them changed since the last recorded run of the stage: why it would run, or
why it is cached.`,
		examples: []string{
			"mc explain //app:server",
			"mc explain :server   # from the directory app/",
		},
	},
	"log": {
		desc: `Prints the log of a stage's last run, from the run history of the local cache:
the output of the build that ran it (a cached stage's log is the one stored
with its result). --failed prints the log of every stage that failed in the
last build of this workspace, each under a header.`,
		examples: []string{
			"mc log //app:server",
			"mc log :server      # from the directory app/",
			"mc log --failed     # what went wrong in the last build",
		},
	},
	"cache stats": {
		desc:     "Shows the size of the local cache, the latest runs of this workspace with their hit rates, and the shared cache.",
		examples: []string{"mc cache stats", "mc cache stats --output=json --runs=20"},
	},
	"cache gc": {
		desc:     "Trims the local cache: without --max-size, removes what no cached result needs; with it, least recently used results first.",
		examples: []string{"mc cache gc", "mc cache gc --max-size=10G"},
	},
	"cache purge": {
		desc:     "Forgets the cached results of stages, so that they run again.",
		examples: []string{"mc cache purge //app:server", "mc cache purge --all"},
	},
	"serve": {
		desc: `Runs the CI server: receives GitHub webhooks (MC_WEBHOOK_SECRET), builds each
push and pull request, reports each run to GitHub as a check run with annotations
(as a GitHub App: --github-app-id, --github-app-key) or commit statuses
(MC_GITHUB_TOKEN), and serves the run history as a web interface.`,
		examples: []string{"mc serve --listen :8080 --url https://ci.example.com",
			"mc serve --url https://ci.example.com --github-app-id 123456 --github-app-key app.pem"},
	},
	"fmt": {
		desc: `Formats BUILD.mc, WORKSPACE.mc and .star files as buildifier formats BUILD
files. With no argument, every such file of the workspace.`,
		examples: []string{"mc fmt", "mc fmt --check   # in CI: list unformatted files, exit 1", "mc fmt app/BUILD.mc"},
	},
	"init": {
		desc: `Starts a workspace in the current directory: writes WORKSPACE.mc (named NAME, or
after the directory) and, when there is none, a first BUILD.mc. It refuses
inside an existing workspace (a nested workspace hides the outer one's
packages) unless --force.`,
		examples: []string{"mc init", "mc init my-project"},
	},
	"version": {
		desc:     "Prints mc's module version and the VCS revision it was built from.",
		examples: []string{"mc version", "mc --version"},
	},
	"agent": {
		desc: `The runner side of the remote protocol. Runner machines start it from their
bootstrap; you do not run it by hand.`,
	},
	"runners": {
		desc: `The remote runners (EC2 machines, or local agent processes) that builds of this
workspace started: list them, and terminate those that should not be running.`,
		examples: []string{"mc runners list", "mc runners reap --all"},
	},
	"runners list": {
		desc:     "Lists the remote runners this workspace owns.",
		examples: []string{"mc runners list --runners=ec2"},
	},
	"runners reap": {
		desc:     "Terminates runners that should not be running: their run is over, or their TTL has passed (--all: every one).",
		examples: []string{"mc runners reap", "mc runners reap --all"},
	},
	"completion": {
		desc: `Prints a shell completion script, completing commands, flags and target
labels. Load it from your shell's startup file.`,
		examples: []string{
			"source <(mc completion bash)                          # in ~/.bashrc",
			"mc completion zsh > \"${fpath[1]}/_mc\"                 # zsh",
			"mc completion fish > ~/.config/fish/completions/mc.fish",
		},
	},
	"help": {
		desc:     "Shows help for a command or a topic (labels, query).",
		examples: []string{"mc help build", "mc help labels", "mc help query"},
	},
}

const exitCodesHelp = `Exit status:
  0  success
  1  a stage or test failed
  2  bad usage, bad BUILD files, unknown targets
  3  infrastructure failure: cache, registry or runners unreachable,
     no sandbox where one is required
  4  mc test matched no test targets
`

const labelsHelp = `Labels and patterns

A label names one target:
  //app/api:server   target server of package app/api (a package is a
                     directory holding a BUILD.mc)
  //app/api          short for //app/api:api
  //:hello           target hello of the root package
  //app/api:main.go  a source file is a target too
  //app/api:out/bin  so is a declared output of a stage

On the command line a label may be relative to the package of the current
directory (in a BUILD.mc file: to that file's package):
  :server            //<current package>:server
  server             the same
  api:server         //<current package>/api:server

Patterns name sets of targets:
  //...              every target of the workspace
  //app/...          every target at or below app/
  ...                every target at or below the current directory
  //app/api:all      every target of package app/api (also //app/api:*)
  :all               every target of the current package

mc build skips test stages matched by a pattern (mc test runs them) and
deploy stages unless --deploy; naming such a stage by its label is an error.

Target names (stage, image, filegroup) use letters, digits and
  % - @ ^ _ + , = ~ / .
that is Bazel's target-name characters less those a shell treats specially.
"all" and "*" are reserved. A name may contain '/' but no empty, '.' or '..'
component. Package names are directory paths.
`

const queryHelp = `Queries the target graph without building anything, in Bazel's query language.
The result is a set of targets, printed one per line (sorted) by default.
Targets are rules (stages, images, filegroups), source files and generated
files (a stage's outs); a generated file depends on the stage declaring it.

Expressions:
  //app/...                  a target pattern (see 'mc help labels'); patterns
                             match rules only, relative ones as on the command
                             line
  deps(x) / deps(x, N)       x and everything it depends on (up to depth N)
  rdeps(u, x) / rdeps(u, x, N)
                             the targets in deps(u) that depend on x
  allpaths(a, b)             every target on a path from a to b
  somepath(a, b)             one shortest path from a to b
  kind(regex, x)             the targets of x whose kind matches (unanchored):
                             "stage rule", "image rule", "filegroup rule",
                             "source file", "generated file"
  attr(name, regex, x)       the rules whose attribute name matches regex
                             (lists: one element; dicts: KEY=VALUE elements)
  filter(regex, x)           the targets whose label //pkg:name matches regex
  tests(x)                   the test = True stages of x
  buildfiles(x)              the BUILD.mc and .star files defining x
  labels(attr, x)            the labels in attribute attr (srcs, deps,
                             image, base, files) of the targets of x
  set(a b c)                 the targets listed
  let v = e1 in e2           e2 with $v bound to e1
  changed("REV")             the rules whose inputs (source files, the BUILD.mc
                             and .star files defining them) differ between
                             git revision REV and the working tree
  affected("REV")            rdeps(//..., changed("REV"))

Operators (one precedence, left to right; parentheses group):
  x + y, x union y           both
  x - y, x except y          x without y
  x ^ y, x intersect y       the targets in both

Unquoted words are letters, digits and */@.-_:$~[] (so //a:b-c is one word
and a - b a difference); quote anything else with '...' or "...".

Output formats (--output):
  label                      one label per line, sorted (default)
  label_kind                 "stage rule //app:server", "source file //a:x.go"
  json                       one object per target: label, kind, location,
                             attrs
  dot                        the graph for Graphviz (dot -Tsvg)
  build                      each rule as the Starlark call that declares it,
                             evaluated (globs expanded, labels absolute)

A mistake in the expression exits 2 and shows the column where parsing
failed. Quote the whole expression: the shell would otherwise split it.`

// helpTopics are the subjects of `mc help TOPIC` that are not commands.
var helpTopics = map[string]string{
	"labels":   labelsHelp,
	"patterns": labelsHelp,
}

// printCmdHelp writes the whole help of one command: what it does, usage,
// flags with their defaults, examples.
func printCmdHelp(w io.Writer, name, usage string, fs *pflag.FlagSet) {
	h := helpTexts[name]
	summary := ""
	for _, c := range commands() {
		if c.name == name {
			summary = c.summary
		}
	}
	if summary != "" {
		fmt.Fprintf(w, "mc %s — %s\n\n", name, summary)
	}
	fmt.Fprintf(w, "Usage: %s\n", strings.TrimSpace("mc "+name+" "+usage))
	if h.desc != "" {
		fmt.Fprintf(w, "\n%s\n", wrapLines(strings.TrimRight(h.desc, "\n"), 80))
	}
	if fs != nil && fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", flagUsages(fs))
	}
	if len(h.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, ex := range h.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

// wrapLines breaks the lines of s longer than width at spaces.
func wrapLines(s string, width int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for utf8.RuneCountInString(line) > width {
			r := []rune(line)
			i := strings.LastIndexByte(string(r[:width+1]), ' ')
			if i <= 0 {
				break // one word longer than the line: left whole
			}
			out = append(out, line[:i])
			line = line[i+1:]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// flagUsages lists fs's flags, one a line with its default, the text
// wrapped at 80 columns under its flag (pflag's own table has no wrapping
// and spells every boolean "--flag[=true|false]").
func flagUsages(fs *pflag.FlagSet) string {
	type row struct {
		left  string
		words []string // the default is one word: never split over lines
	}
	var rows []row
	width := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		arg, text := pflag.UnquoteUsage(f)
		if f.Value.Type() != "bool" {
			if arg == "" || arg == "string" {
				arg = "VALUE"
			}
			left += " " + strings.ToUpper(arg)
		}
		words := strings.Fields(text)
		switch def := f.DefValue; {
		case f.Value.Type() == "bool" && def == "false", def == "", def == "[]", def == "0" && f.Value.Type() != "int":
		case f.Value.Type() == "string":
			words = append(words, fmt.Sprintf("(default %q)", def))
		default:
			words = append(words, "(default "+def+")")
		}
		rows = append(rows, row{left, words})
		width = max(width, len(left))
	})
	width = min(width, 30)
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.left)
		col := len(r.left)
		indent := width + 3
		if col+2 > indent {
			b.WriteString("\n")
			col = 0
		}
		b.WriteString(strings.Repeat(" ", indent-col))
		col = indent
		for i, word := range r.words {
			if i > 0 && col+1+len(word) > 80 {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else if i > 0 {
				b.WriteByte(' ')
				col++
			}
			b.WriteString(word)
			col += len(word)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// runHelp is `mc help [CMD|TOPIC]`.
func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return nil
	}
	if len(args) > 2 {
		return usagef("help: one command or topic expected")
	}
	name := args[0]
	if name == "-h" || name == "--help" {
		printCmdHelp(e.stdout, "help", "[COMMAND [SUBCOMMAND] | TOPIC]", nil)
		return nil
	}
	if t, ok := helpTopics[name]; ok {
		fmt.Fprint(e.stdout, t)
		return nil
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		// A command's help is what its --help prints.
		rest := append(args[1:], "--help")
		return c.run(ctx, e, rest)
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	for t := range helpTopics {
		names = append(names, t)
	}
	sort.Strings(names)
	return usagef("help: no command or topic %q%s; the topics are labels and query", name, suggest(graph.Closest(name, names)))
}

// flagSuggestion adds the closest flag names to pflag's "unknown flag"
// error (--keep_going: did you mean --keep-going?).
func flagSuggestion(fs *pflag.FlagSet, err error) string {
	msg := err.Error()
	const long = "unknown flag: --"
	i := strings.Index(msg, long)
	if i < 0 {
		return ""
	}
	want := msg[i+len(long):]
	if j := strings.IndexByte(want, '='); j >= 0 {
		want = want[:j]
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	// Underscores for dashes is the commonest slip (Bazel spells flags so).
	if alt := strings.ReplaceAll(want, "_", "-"); alt != want && fs.Lookup(alt) != nil {
		return " (did you mean --" + alt + "?)"
	}
	c := graph.Closest(want, names)
	if len(c) == 0 {
		return ""
	}
	// The closest only: a flag table is long, and near names are many.
	return suggest([]string{"--" + c[0]})
}

// versionString is the version and revision in bi: "v1.2.0 (revision
// 0123abcd, modified)". Release builds may set buildVersion instead.
func versionString(bi *debug.BuildInfo, ok bool) string {
	v := buildVersion
	if v == "" {
		v = "devel"
		if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if !ok {
		return v
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v + " (no VCS revision in the build info)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	extra := "revision " + rev
	if when != "" {
		extra += " of " + when
	}
	if modified {
		extra += ", modified"
	}
	return v + " (" + extra + ")"
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	return versionString(bi, ok)
}
