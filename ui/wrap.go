package ui

import (
	"strings"
	"unicode/utf8"
)

// Wrap breaks the lines of s at spaces so that none is longer than width
// runes; a word longer than a line is left whole.
func Wrap(s string, width int) string {
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
