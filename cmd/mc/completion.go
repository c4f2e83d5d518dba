package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/completion"
	"github.com/mc-build/mc/helptext"
)

// Shell completion. The scripts are thin: they hand the words of the
// command line to the hidden `mc __complete WORD...` (the last word is the
// one being completed, possibly empty) and offer what it prints, one
// candidate a line. So commands, flags and labels are completed by the same
// code that parses them, and the scripts never go stale.

func runCompletion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "completion", "bash|zsh|fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("completion: name one shell: bash, zsh or fish")
	}
	s, ok := completion.Script(fs.Arg(0))
	if !ok {
		return usagef("completion: no completion for shell %q; there is bash, zsh and fish", fs.Arg(0))
	}
	fmt.Fprint(e.stdout, s)
	return nil
}

// subcommands of the commands that have them, for completion.
var subcommands = map[string][]string{
	"cache":   {"gc", "purge", "stats"},
	"runners": {"list", "reap"},
}

// labelCommands take labels or patterns as arguments.
var labelCommands = map[string]bool{"build": true, "test": true, "watch": true, "explain": true, "log": true, "cache purge": true}

// runComplete is the hidden `mc __complete WORD...`: the candidates for the
// last word, one a line. It never fails loudly: a shell has nothing to do
// with an error but show nothing.
func runComplete(ctx context.Context, e *env, words []string) error {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	words = words[:len(words)-1]
	// -C DIR moves where labels are resolved, as it moves the command.
	for len(words) >= 2 && words[0] == "-C" {
		e.dir = resolveDir(e.dir, words[1])
		words = words[2:]
	}
	if len(words) == 1 && words[0] == "-C" {
		return nil // a directory: the shell's own completion does that
	}
	var cands []string
	if len(words) == 0 {
		if strings.HasPrefix(cur, "-") {
			cands = []string{"-C", "--help", "--version"}
		} else {
			for _, c := range commands() {
				cands = append(cands, c.name)
			}
		}
		return printCands(e.stdout, cur, cands)
	}
	name := words[0]
	switch name {
	case "help":
		if len(words) == 1 {
			for _, c := range commands() {
				cands = append(cands, c.name)
			}
			for _, t := range helptext.Topics() {
				cands = append(cands, t)
			}
		}
		return printCands(e.stdout, cur, cands)
	case "completion":
		if len(words) == 1 {
			cands = []string{"bash", "zsh", "fish"}
		}
		return printCands(e.stdout, cur, cands)
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == name {
			cmd = &c
		}
	}
	if cmd == nil {
		return nil
	}
	probe := []string{}
	if subs, ok := subcommands[name]; ok {
		if len(words) == 1 {
			return printCands(e.stdout, cur, subs)
		}
		probe = append(probe, words[1])
		name += " " + words[1]
	}
	if strings.HasPrefix(cur, "-") {
		fs := commandFlags(ctx, e, cmd, probe)
		if fs == nil {
			return nil
		}
		return printCands(e.stdout, cur, completion.Flags(fs))
	}
	if labelCommands[name] {
		return printCands(e.stdout, cur, completeLabels(ctx, e, cur))
	}
	return nil
}

// commandFlags is the flag set cmd declares, learnt by running it with
// --help while the help text is discarded.
func commandFlags(ctx context.Context, e *env, cmd *command, args []string) *pflag.FlagSet {
	var got *pflag.FlagSet
	pe := *e
	pe.stdout, pe.stderr = io.Discard, io.Discard
	pe.flagsSeen = func(fs *pflag.FlagSet) { got = fs }
	_ = cmd.run(ctx, &pe, append(args, "--help"))
	return got
}

// completeLabels offers the labels and patterns that complete cur.
func completeLabels(ctx context.Context, e *env, cur string) []string {
	s, err := openSession(ctx, e, "")
	if err != nil {
		return nil
	}
	defer s.Close(ctx)
	return completion.Labels(ctx, s, cur)
}

func printCands(w io.Writer, cur string, cands []string) error {
	completion.Print(w, cur, cands)
	return nil
}
