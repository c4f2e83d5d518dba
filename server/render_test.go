package server

import (
	"strings"
	"testing"
	"time"
)

func TestServeANSI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain <b> & 'q'", "plain &lt;b&gt; &amp; &#39;q&#39;"},
		{"\x1b[31mred\x1b[0m rest", `<span class="fg31">red</span> rest`},
		{"\x1b[1;92mbold green\x1b[m", `<span class="fg92 b">bold green</span>`},
		{"\x1b[32ma\x1b[44mb\x1b[39mc", `<span class="fg32">a</span><span class="fg32 bg44">b</span><span class="bg44">c</span>`},
		{"\x1b[2K\x1b[1Aclear", "clear"},
		{"\x1b]0;title\atext", "text"},
		{"cut \x1b[3", "cut "},
		{"\x1b[31m<script>", `<span class="fg31">&lt;script&gt;</span>`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := string(ansiHTML(tc.in)); got != tc.want {
				t.Fatalf("ansiHTML(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestServeTimelineCriticalPath(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &Run{Status: StatusSuccess, Started: t0, Finished: t0.Add(10 * time.Second), CriticalPath: []string{"//a:a"}}
	svg := string(timelineSVG(r, []*Stage{
		{Label: "//a:a", Status: StageBuilt, Started: t0, Finished: t0.Add(5 * time.Second)},
		{Label: "//b:b", Status: StageBuilt, Started: t0.Add(5 * time.Second), Finished: t0.Add(10 * time.Second)},
		{Label: "//c:c", Status: StageCached, Started: t0, Finished: t0},
	}, t0))
	for _, want := range []string{`class="bar st-built crit" data-label="//a:a"`, `class="bar st-built" data-label="//b:b"`,
		`<rect x="240" y="12" width="300"`, `<rect x="540" y="30" width="300"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("timeline lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "//c:c") {
		t.Errorf("a cached stage has a bar")
	}
}
