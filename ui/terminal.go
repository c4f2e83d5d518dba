package ui

import (
	"io"
	"os"

	"golang.org/x/term"
)

// NewTextFor is the text display of a command writing to w: with a
// progress display sized to the terminal when w is one, colours as color
// says (auto, always or never; NO_COLOR in getenv turns auto off,
// no-color.org), cached stages' logs replayed when cachedLogs.
func NewTextFor(w io.Writer, verbose, cachedLogs bool, color string, getenv func(string) (string, bool)) *Text {
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	text := NewText(w, tty, verbose)
	text.ShowCachedLogs(cachedLogs)
	text.SetColor(useColor(color, tty, getenv))
	if tty {
		text.SetSize(func() (int, int) {
			c, r, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 0, 0
			}
			return c, r
		})
	}
	return text
}

// useColor is --color, with NO_COLOR (no-color.org) turning auto off.
func useColor(flag string, tty bool, getenv func(string) (string, bool)) bool {
	switch flag {
	case "always":
		return true
	case "never":
		return false
	}
	if v, ok := getenv("NO_COLOR"); ok && v != "" {
		return false
	}
	return tty
}
