package server

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
)

// timelineSVG draws one bar per stage that ran, from its start to its end
// on the run's time axis; the stages of the critical path are marked.
func timelineSVG(r *Run, stages []*Stage, now time.Time) template.HTML {
	var rows []*Stage
	for _, s := range stages {
		if !s.Started.IsZero() && s.Status != StageCached {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 || r.Started.IsZero() {
		return ""
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Started.Before(rows[j].Started) })
	end := r.Finished
	if end.IsZero() {
		end = now
	}
	for _, s := range rows {
		if s.Finished.After(end) {
			end = s.Finished
		}
	}
	span := end.Sub(r.Started)
	if span <= 0 {
		span = time.Millisecond
	}
	crit := map[string]bool{}
	for _, l := range r.CriticalPath {
		crit[l] = true
	}
	const labelW, barW, rowH = 230, 600, 18
	w, h := labelW+barW+2*pad, 2*pad+len(rows)*rowH+16
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="timeline">`, w, h, w, h)
	x := func(t time.Time) int {
		d := t.Sub(r.Started)
		if d < 0 {
			d = 0
		}
		return labelW + pad + int(int64(barW)*int64(d)/int64(span))
	}
	for i, s := range rows {
		y := pad + i*rowH
		fin := s.Finished
		if fin.IsZero() {
			fin = end
		}
		x1, x2 := x(s.Started), x(fin)
		if x2-x1 < 2 {
			x2 = x1 + 2
		}
		cls := "bar st-" + s.Status
		if crit[s.Label] {
			cls += " crit"
		}
		esc := template.HTMLEscapeString(s.Label)
		fmt.Fprintf(&b, `<g class="%s" data-label="%s"><title>%s: %s</title><text x="%d" y="%d" text-anchor="end">%s</text><rect x="%d" y="%d" width="%d" height="%d"/></g>`,
			cls, esc, esc, fmtDuration(fin.Sub(s.Started)), labelW, y+12, esc, x1, y+2, x2-x1, rowH-5)
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">0</text><text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`,
		labelW+pad, h-4, labelW+pad+barW, h-4, fmtDuration(span))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}
