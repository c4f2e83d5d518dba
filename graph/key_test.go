package graph

import (
	"testing"

	"github.com/mc-build/mc/cas"
)

func baseParts() *KeyParts {
	return &KeyParts{
		Package:  "service/api",
		Cmds:     []string{"go build -o out/api ."},
		Env:      map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-trimpath"},
		Secrets:  []string{"NPM_TOKEN", "A_TOKEN"},
		Platform: "linux/amd64",
		Outs:     []string{"out/api", "out/b/"},
		Network:  true,
		Inputs: []KeyInput{
			{Path: "service/api/main.go", Digest: cas.FromBytes([]byte("main"))},
			{Path: "lib/gen/version.go", Digest: cas.FromBytes([]byte("v")), Exec: true},
		},
	}
}

// The digest of a fixed preimage must never change by accident: a change
// silently invalidates every user's cache (or worse, aliases old entries).
// Change keyVersion and this constant together, on purpose.
const goldenKey = "sha256:6457331614fb3f2a5d4e8345eecb9cd47ba618bf228d2c8b9cf0f5bdf1515dd6"

func TestKeyStableAcrossRuns(t *testing.T) {
	a, b := baseParts().Digest(), baseParts().Digest()
	if a != b {
		t.Fatalf("same parts, different digests: %s vs %s", a, b)
	}
	for i := 0; i < 50; i++ { // map iteration order varies between runs
		if d := baseParts().Digest(); d != a {
			t.Fatalf("digest changed on iteration %d", i)
		}
	}
	if got := a.String(); got != goldenKey {
		t.Logf("golden digest is %s", got)
		t.Errorf("the canonical encoding changed: got %s, want %s (bump keyVersion and update goldenKey if intended)", got, goldenKey)
	}
}

func TestKeyOrderInsensitiveWhereUnordered(t *testing.T) {
	ref := baseParts().Digest()
	p := baseParts()
	p.Inputs[0], p.Inputs[1] = p.Inputs[1], p.Inputs[0]
	p.Secrets = []string{"A_TOKEN", "NPM_TOKEN"}
	p.Outs = []string{"out/b/", "out/api"}
	p.Env = map[string]string{"GOFLAGS": "-trimpath", "CGO_ENABLED": "0"}
	if d := p.Digest(); d != ref {
		t.Errorf("reordering inputs, secrets, outs or env changed the key")
	}
}

func TestKeySensitiveToEveryPart(t *testing.T) {
	ref := baseParts().Digest()
	cases := map[string]func(p *KeyParts){
		"package":      func(p *KeyParts) { p.Package = "service" },
		"cmd":          func(p *KeyParts) { p.Cmds[0] += " -v" },
		"cmd order":    func(p *KeyParts) { p.Cmds = append(p.Cmds, "true"); p.Cmds[0], p.Cmds[1] = p.Cmds[1], p.Cmds[0] },
		"cmd split":    func(p *KeyParts) { p.Cmds = []string{"go build", "-o out/api ."} },
		"env value":    func(p *KeyParts) { p.Env["CGO_ENABLED"] = "1" },
		"env added":    func(p *KeyParts) { p.Env["X"] = "" },
		"env key/val":  func(p *KeyParts) { p.Env = map[string]string{"CGO_ENABLED0": "", "GOFLAGS": "-trimpath"} },
		"secret name":  func(p *KeyParts) { p.Secrets = []string{"NPM_TOKEN"} },
		"image":        func(p *KeyParts) { p.Image = "sha256:abc" },
		"platform":     func(p *KeyParts) { p.Platform = "linux/arm64" },
		"outs":         func(p *KeyParts) { p.Outs = []string{"out/api", "out/b"} },
		"network":      func(p *KeyParts) { p.Network = false },
		"input bytes":  func(p *KeyParts) { p.Inputs[0].Digest = cas.FromBytes([]byte("main2")) },
		"input path":   func(p *KeyParts) { p.Inputs[0].Path = "service/api/main2.go" },
		"input exec":   func(p *KeyParts) { p.Inputs[0].Exec = true },
		"input tree":   func(p *KeyParts) { p.Inputs[0].Tree = true },
		"input gone":   func(p *KeyParts) { p.Inputs = p.Inputs[:1] },
		"input added":  func(p *KeyParts) { p.Inputs = append(p.Inputs, KeyInput{Path: "x", Digest: cas.Empty}) },
		"path/content": func(p *KeyParts) { p.Inputs[0].Path, p.Inputs[1].Path = p.Inputs[1].Path, p.Inputs[0].Path },
	}
	seen := map[cas.Digest]string{}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			p := baseParts()
			mut(p)
			d := p.Digest()
			if d == ref {
				t.Fatalf("changing the %s did not change the key", name)
			}
			if other, dup := seen[d]; dup {
				t.Fatalf("%s and %s give the same key", name, other)
			}
			seen[d] = name
		})
	}
}

// Length prefixes keep field boundaries: moving bytes between adjacent
// strings must change the key.
func TestKeyFieldBoundaries(t *testing.T) {
	a := &KeyParts{Cmds: []string{"ab", "c"}}
	b := &KeyParts{Cmds: []string{"a", "bc"}}
	if a.Digest() == b.Digest() {
		t.Fatal("[ab c] and [a bc] collide")
	}
	c := &KeyParts{Env: map[string]string{"A": "BC"}}
	d := &KeyParts{Env: map[string]string{"AB": "C"}}
	if c.Digest() == d.Digest() {
		t.Fatal("env A=BC and AB=C collide")
	}
}
