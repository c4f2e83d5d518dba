// Package helptext holds the manual mc prints: each command's description
// and examples, the help topics, the exit statuses, and the layout of a
// command's flag table.
package helptext

import "sort"

// Command is what `mc help CMD` and `mc CMD --help` say beyond the flags:
// what the command is for, and examples to copy.
type Command struct {
	Desc     string
	Examples []string // "command  # comment" lines
}

// For is the help of the command name ("build", "cache gc"); the zero
// Command for one without.
func For(name string) Command { return commands()[name] }

// Topic is the text of `mc help TOPIC` for a subject that is not a command.
func Topic(name string) (string, bool) {
	t, ok := topics()[name]
	return t, ok
}

// Topics are the names of the topics, sorted.
func Topics() []string {
	var names []string
	for n := range topics() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// commands are keyed by the name given to cmd/mc's newFlags.
func commands() map[string]Command {
	return map[string]Command{
		"build": {
			Desc: `Builds the stages the patterns match and everything they depend on. Each stage
runs in a sandbox with only its declared inputs; its outputs appear under
mc-out/<package>/. A stage whose key (command, inputs, image, env, ...) was
seen before is restored from the cache instead of run: its log is not shown
again unless you pass --show-cached-logs or -v.

Patterns are labels (//pkg:name, :name, pkg:name) or sets of them (//...,
//pkg/..., //pkg:all); see 'mc help labels'. A pattern skips test stages
(mc test runs them) and deploy stages (unless --deploy).`,
			Examples: []string{
				"mc build //...                  # everything in the workspace",
				"mc build //app:server           # one stage and what it needs",
				"mc build :server                # the same, from the directory app/",
				"mc build -k //...               # keep going after a failure",
				"mc build --affected-since=main  # only what changed since main",
			},
		},
		"test": {
			Desc: `Builds what the patterns need, then runs the test stages (test = True) among
them. A passing test is cached like any stage and shows as PASSED (cached)
until one of its inputs changes; failed tests are never cached. Exit status 1
when a test fails, 4 when the patterns match no test stage.`,
			Examples: []string{
				"mc test //...              # every test of the workspace",
				"mc test //lib/...          # the tests below lib/",
				"mc test --nocache //lib:t  # run a test again although it passed",
			},
		},
		"watch": {
			Desc: `Builds the stages the patterns match (with --test, also runs their tests, as
mc test), then watches the files those stages and their BUILD files read.
When files are saved it rebuilds only what they affect: the stages reading a
changed file and those depending on them, with everything else taken from
the last build (the evaluated graph and the stat cache stay in memory). A
saved BUILD.mc, or a .star file it loads, evaluates again just the packages
that read it ("re-evaluated //pkg" says which). Events within 10 ms make one
rebuild (editors save in bursts). mc-out/, hidden directories such as .git
and the workspace's ignore list are not watched.

A failing build is shown with its logs and watching goes on: fix the file
and save. Ctrl-C stops the build under way (its running stages are killed,
nothing half-written is recorded) and exits 0. While it runs, mc watch holds
the workspace: other mc commands in it wait. Stages run on this machine.
After each rebuild mc watch prints how long after the save the first stage
started. Linux has a limit of inotify watches (one per directory):
sysctl fs.inotify.max_user_watches.`,
			Examples: []string{
				"mc watch //...                 # build everything, then what each save affects",
				"mc watch --test //lib/...      # rerun the affected tests below lib/ on every save",
				"mc watch -k :server            # from app/: one stage and its inputs",
			},
		},
		"query": {
			Desc: queryHelp,
			Examples: []string{
				"mc query 'deps(//app:server)'",
				"mc query 'rdeps(//..., //lib:core)' --output=label_kind",
				"mc query 'kind(\"stage\", //...) - tests(//...)'",
				"mc query 'somepath(//app:server, //lib:gen)' --output=dot",
				"mc query 'affected(\"origin/main\")'",
			},
		},
		"explain": {
			Desc: `Shows the parts of a stage's key, computed without running anything, and which
of them changed since the last recorded run of the stage: why it would run, or
why it is cached.`,
			Examples: []string{
				"mc explain //app:server",
				"mc explain :server   # from the directory app/",
			},
		},
		"log": {
			Desc: `Prints the log of a stage's last run, from the run history of the local cache:
the output of the build that ran it (a cached stage's log is the one stored
with its result). --failed prints the log of every stage that failed in the
last build of this workspace, each under a header.`,
			Examples: []string{
				"mc log //app:server",
				"mc log :server      # from the directory app/",
				"mc log --failed     # what went wrong in the last build",
			},
		},
		"cache stats": {
			Desc:     "Shows the size of the local cache, the latest runs of this workspace with their hit rates, and the shared cache.",
			Examples: []string{"mc cache stats", "mc cache stats --output=json --runs=20"},
		},
		"cache gc": {
			Desc:     "Trims the local cache: without --max-size, removes what no cached result needs; with it, least recently used results first.",
			Examples: []string{"mc cache gc", "mc cache gc --max-size=10G"},
		},
		"cache purge": {
			Desc:     "Forgets the cached results of stages, so that they run again.",
			Examples: []string{"mc cache purge //app:server", "mc cache purge --all"},
		},
		"serve": {
			Desc: `Runs the CI server: receives GitHub webhooks (MC_WEBHOOK_SECRET), builds each
push and pull request, reports each run to GitHub as a check run with annotations
(as a GitHub App: --github-app-id, --github-app-key) or commit statuses
(MC_GITHUB_TOKEN), and serves the run history as a web interface.`,
			Examples: []string{"mc serve --listen :8080 --url https://ci.example.com",
				"mc serve --url https://ci.example.com --github-app-id 123456 --github-app-key app.pem"},
		},
		"fmt": {
			Desc: `Formats BUILD.mc, WORKSPACE.mc and .star files as buildifier formats BUILD
files. With no argument, every such file of the workspace.`,
			Examples: []string{"mc fmt", "mc fmt --check   # in CI: list unformatted files, exit 1", "mc fmt app/BUILD.mc"},
		},
		"init": {
			Desc: `Starts a workspace in the current directory: writes WORKSPACE.mc (named NAME, or
after the directory) and, when there is none, a first BUILD.mc. It refuses
inside an existing workspace (a nested workspace hides the outer one's
packages) unless --force.`,
			Examples: []string{"mc init", "mc init my-project"},
		},
		"version": {
			Desc:     "Prints mc's module version and the VCS revision it was built from.",
			Examples: []string{"mc version", "mc --version"},
		},
		"agent": {
			Desc: `The runner side of the remote protocol. Runner machines start it from their
bootstrap; you do not run it by hand.`,
		},
		"runners": {
			Desc: `The remote runners (EC2 machines, or local agent processes) that builds of this
workspace started: list them, and terminate those that should not be running.`,
			Examples: []string{"mc runners list", "mc runners reap --all"},
		},
		"runners list": {
			Desc:     "Lists the remote runners this workspace owns.",
			Examples: []string{"mc runners list --runners=ec2"},
		},
		"runners reap": {
			Desc:     "Terminates runners that should not be running: their run is over, or their TTL has passed (--all: every one).",
			Examples: []string{"mc runners reap", "mc runners reap --all"},
		},
		"completion": {
			Desc: `Prints a shell completion script, completing commands, flags and target
labels. Load it from your shell's startup file.`,
			Examples: []string{
				"source <(mc completion bash)                          # in ~/.bashrc",
				"mc completion zsh > \"${fpath[1]}/_mc\"                 # zsh",
				"mc completion fish > ~/.config/fish/completions/mc.fish",
			},
		},
		"help": {
			Desc:     "Shows help for a command or a topic (labels, query).",
			Examples: []string{"mc help build", "mc help labels", "mc help query"},
		},
	}
}

// ExitCodes is the list of exit statuses of every command.
const ExitCodes = `Exit status:
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

// topics are the subjects of `mc help TOPIC` that are not commands.
func topics() map[string]string {
	return map[string]string{
		"labels":   labelsHelp,
		"patterns": labelsHelp,
	}
}
