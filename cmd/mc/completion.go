package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/graph"
)

// Shell completion. The scripts are thin: they hand the words of the
// command line to the hidden `mc __complete WORD...` (the last word is the
// one being completed, possibly empty) and offer what it prints, one
// candidate a line. So commands, flags and labels are completed by the same
// code that parses them, and the scripts never go stale.

const bashCompletion = `# bash completion for mc. Load it with: source <(mc completion bash)
_mc() {
    local IFS=$' \t\n'
    # bash splits labels at ':' (COMP_WORDBREAKS): take the words from the
    # line itself, and offer only what follows the last ':' of the word.
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -ra words <<< "$line"
    [[ $line == *[[:space:]] ]] && words+=("")
    local cur="${words[${#words[@]}-1]}"
    IFS=$'\n'
    COMPREPLY=($(mc __complete "${words[@]:1}" 2>/dev/null))
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon="${cur%"${cur##*:}"}"
        COMPREPLY=("${COMPREPLY[@]#"$colon"}")
    fi
    # A label ending in ':' or '/' or a flag ending in '=' is not finished.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[:/=] ]]; then
        compopt -o nospace 2>/dev/null
    fi
}
complete -F _mc mc
`

const zshCompletion = `#compdef mc
# zsh completion for mc. Put it in a directory of $fpath as _mc, or:
#   source <(mc completion zsh)
_mc() {
    local -a cands
    cands=("${(@f)$(mc __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    cands=(${cands:#})
    local c
    local -a done partial
    for c in $cands; do
        if [[ $c == *[:/] ]]; then partial+=("$c"); else done+=("$c"); fi
    done
    (( ${#done} )) && compadd -Q -- $done
    (( ${#partial} )) && compadd -Q -S '' -- $partial
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _mc "$@"
else
    compdef _mc mc
fi
`

const fishCompletion = `# fish completion for mc. Put it in ~/.config/fish/completions/mc.fish
function __mc_complete
    set -l words (commandline -opc)
    set -e words[1]
    mc __complete $words (commandline -ct) 2>/dev/null
end
complete -c mc -f -a '(__mc_complete)'
`

func runCompletion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "completion", "bash|zsh|fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	shells := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
	if fs.NArg() != 1 {
		return usagef("completion: name one shell: bash, zsh or fish")
	}
	s, ok := shells[fs.Arg(0)]
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
			for t := range helpTopics {
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
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if f.Value.Type() == "bool" {
				cands = append(cands, "--"+f.Name)
			} else {
				cands = append(cands, "--"+f.Name+"=")
			}
		})
		return printCands(e.stdout, cur, cands)
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

// completeLabels offers packages ("//app/api:") while no ':' was typed, and
// the targets of the named package after it. Relative words complete
// relative to the current directory's package, as they are parsed.
func completeLabels(ctx context.Context, e *env, cur string) []string {
	s, err := openSession(ctx, e, "")
	if err != nil {
		return nil
	}
	defer s.Close(ctx)
	abs := strings.HasPrefix(cur, "//")
	if i := strings.IndexByte(cur, ':'); i >= 0 {
		pkgPart := cur[:i]
		var pkg string
		switch {
		case abs:
			pkg = pkgPart[2:]
		case pkgPart == "":
			pkg = s.RelDir
		default:
			pkg = joinRel(s.RelDir, pkgPart)
		}
		if !s.Eval.IsPackage(pkg) {
			return nil
		}
		loaded, err := graph.Load(ctx, s.Eval, []string{pkg})
		if err != nil || loaded[pkg] == nil {
			return nil
		}
		cands := []string{pkgPart + ":all"}
		for _, t := range loaded[pkg].Targets {
			cands = append(cands, pkgPart+":"+t.Label.Name)
		}
		return cands
	}
	pkgs, err := s.Eval.FindPackages(ctx, "")
	if err != nil {
		return nil
	}
	var cands []string
	if abs || cur == "" {
		cands = append(cands, "//...")
		for _, p := range pkgs {
			cands = append(cands, "//"+p+":")
		}
		if cur == "" && s.Eval.IsPackage(s.RelDir) {
			cands = append(cands, ":")
		}
		return cands
	}
	prefix := ""
	if s.RelDir != "" {
		prefix = s.RelDir + "/"
	}
	for _, p := range pkgs {
		if rel, ok := strings.CutPrefix(p, prefix); ok && rel != "" {
			cands = append(cands, rel+":")
		}
	}
	return cands
}

func joinRel(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return dir + "/" + rel
}

func printCands(w io.Writer, cur string, cands []string) error {
	sort.Strings(cands)
	for _, c := range cands {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(w, c)
		}
	}
	return nil
}
