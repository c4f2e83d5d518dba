package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/helptext"
	"github.com/mc-build/mc/ui"
)

// printCmdHelp writes the whole help of one command: what it does, usage,
// flags with their defaults, examples.
func printCmdHelp(w io.Writer, name, usage string, fs *pflag.FlagSet) {
	h := helptext.For(name)
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
	if h.Desc != "" {
		fmt.Fprintf(w, "\n%s\n", ui.Wrap(strings.TrimRight(h.Desc, "\n"), 80))
	}
	if fs != nil && fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", helptext.FlagUsages(fs))
	}
	if len(h.Examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, ex := range h.Examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
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
	if t, ok := helptext.Topic(name); ok {
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
	for _, t := range helptext.Topics() {
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
