package graph_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

func TestKeyPartsJSONIsEncodingJSON(t *testing.T) {
	d1, d2 := cas.FromBytes([]byte("1")), cas.FromBytes([]byte("2"))
	cases := []struct {
		name  string
		parts graph.KeyParts
	}{
		{"empty", graph.KeyParts{}},
		{"typical", graph.KeyParts{
			Package: "service/api", Cmds: []string{"go build -o out/api ./cmd/api"},
			Env: map[string]string{"CGO_ENABLED": "0", "A": "b"}, Secrets: []string{"NPM_TOKEN"},
			Platform: "linux/amd64", Outs: []string{"out/api", "out/dir/"}, Network: true,
			Inputs: []graph.KeyInput{{Path: "service/api/main.go", Digest: d1}, {Path: "lib/gen/out", Digest: d2, Exec: true, Tree: true}},
		}},
		{"strings needing escapes", graph.KeyParts{
			Package: `we"ird\pkg`, Cmds: []string{"echo 'a' > b && cat <x | y\n\tz", "ünïcode ✓", "\x00\x1f", "bad utf8 \xff"},
			Env: map[string]string{"K": "<&>", "U": "\u2028"}, Image: "reg/x@sha256:00", Platform: "p",
			Outs: []string{}, Inputs: []graph.KeyInput{},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(&c.parts)
			if err != nil {
				t.Fatal(err)
			}
			got := c.parts.JSON()
			if string(got) != string(want) {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
			var back graph.KeyParts
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if back.Digest() != c.parts.Digest() && c.name != "strings needing escapes" {
				t.Errorf("decoded parts have another key")
			}
		})
	}
}

func TestKeyPartsJSONRoundTripsTheKey(t *testing.T) {
	p := graph.KeyParts{Package: "a", Cmds: []string{"x"}, Env: map[string]string{"E": "1"}, Secrets: []string{"S"},
		Platform: "linux/amd64", Outs: []string{"o"}, Network: false,
		Inputs: []graph.KeyInput{{Path: "a/f", Digest: cas.FromBytes([]byte("f")), Exec: true}}}
	var back graph.KeyParts
	if err := json.Unmarshal(p.JSON(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) || back.Digest() != p.Digest() {
		t.Errorf("round trip: %+v, want %+v", back, p)
	}
}
