package server

import (
	"html/template"
	"strconv"
	"strings"
)

// ansiHTML renders a log line's ANSI SGR colours (30–37, 90–97 and their
// backgrounds, bold, reset) as spans with CSS classes, HTML-escaping the
// text. Other escape sequences (cursor movement, OSC titles) are dropped.
func ansiHTML(line string) template.HTML {
	var b strings.Builder
	var fg, bg string
	bold := false
	open := false
	closeSpan := func() {
		if open {
			b.WriteString("</span>")
			open = false
		}
	}
	openSpan := func() {
		var cls []string
		if fg != "" {
			cls = append(cls, "fg"+fg)
		}
		if bg != "" {
			cls = append(cls, "bg"+bg)
		}
		if bold {
			cls = append(cls, "b")
		}
		if len(cls) > 0 {
			b.WriteString(`<span class="` + strings.Join(cls, " ") + `">`)
			open = true
		}
	}
	for i := 0; i < len(line); {
		j := strings.IndexByte(line[i:], 0x1b)
		if j < 0 {
			b.WriteString(template.HTMLEscapeString(line[i:]))
			break
		}
		b.WriteString(template.HTMLEscapeString(line[i : i+j]))
		i += j + 1
		if i >= len(line) {
			break
		}
		switch line[i] {
		case '[': // CSI: parameters, then a final byte in 0x40–0x7e
			k := i + 1
			for k < len(line) && (line[k] < 0x40 || line[k] > 0x7e) {
				k++
			}
			if k >= len(line) {
				i = len(line)
				continue
			}
			if line[k] == 'm' {
				closeSpan()
				for _, p := range strings.Split(line[i+1:k], ";") {
					n, err := strconv.Atoi(p)
					if p == "" {
						n, err = 0, nil
					}
					if err != nil {
						continue
					}
					switch {
					case n == 0:
						fg, bg, bold = "", "", false
					case n == 1:
						bold = true
					case n == 22:
						bold = false
					case n >= 30 && n <= 37, n >= 90 && n <= 97:
						fg = strconv.Itoa(n)
					case n == 39:
						fg = ""
					case n >= 40 && n <= 47, n >= 100 && n <= 107:
						bg = strconv.Itoa(n)
					case n == 49:
						bg = ""
					}
				}
				openSpan()
			}
			i = k + 1
		case ']': // OSC: up to BEL or ESC \
			k := strings.IndexAny(line[i:], "\a\x1b")
			if k < 0 {
				i = len(line)
				continue
			}
			i += k + 1
			if line[i-1] == 0x1b && i < len(line) && line[i] == '\\' {
				i++
			}
		default:
			i++
		}
	}
	closeSpan()
	return template.HTML(b.String())
}
