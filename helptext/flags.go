package helptext

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// FlagUsages lists fs's flags, one a line with its default, the text
// wrapped at 80 columns under its flag (pflag's own table has no wrapping
// and spells every boolean "--flag[=true|false]").
func FlagUsages(fs *pflag.FlagSet) string {
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
