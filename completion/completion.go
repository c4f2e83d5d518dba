// Package completion is mc's shell completion: the bash, zsh and fish
// scripts (which call `mc __complete`), and the labels offered for a word.
package completion

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/session"
	"github.com/spf13/pflag"
)

// Script is the completion script for shell (bash, zsh or fish).
func Script(shell string) (string, bool) {
	s, ok := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[shell]
	return s, ok
}

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

// Labels offers packages ("//app/api:") while no ':' was typed, and
// the targets of the named package after it. Relative words complete
// relative to the current directory's package, as they are parsed.
func Labels(ctx context.Context, s *session.Session, cur string) []string {
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

// Flags are the candidates for fs's flags: "--name" for a boolean,
// "--name=" for a flag that takes a value; hidden ones are not offered.
func Flags(fs *pflag.FlagSet) []string {
	var cands []string
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
	return cands
}

// Print writes the candidates that complete cur, sorted, one a line: what
// `mc __complete` answers the shell.
func Print(w io.Writer, cur string, cands []string) {
	sort.Strings(cands)
	for _, c := range cands {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(w, c)
		}
	}
}
