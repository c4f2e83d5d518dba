package graph

import (
	"encoding/binary"
	"sort"

	"github.com/mc-build/mc/cas"
)

// keyVersion changes whenever the encoding or the meaning of a key part
// changes, so that old cache entries can never be mistaken for new ones.
const keyVersion = "mc-action-key/1"

// KeyInput is one file in a stage's input tree, as the key sees it.
type KeyInput struct {
	Path   string     `json:"path"` // workspace-relative
	Digest cas.Digest `json:"digest"`
	Exec   bool       `json:"exec,omitempty"`
	Tree   bool       `json:"tree,omitempty"` // Digest is a cas.Tree blob (a directory output)
}

// KeyParts is the preimage of an action digest: everything SPEC §5 lists.
// It is plain data so that `mc explain` can store and diff it.
type KeyParts struct {
	Package  string            `json:"package"` // the working directory
	Cmds     []string          `json:"cmds"`
	Env      map[string]string `json:"env,omitempty"`
	Secrets  []string          `json:"secrets,omitempty"` // names only
	Image    string            `json:"image,omitempty"`   // image digest
	Platform string            `json:"platform"`
	Outs     []string          `json:"outs"`
	Network  bool              `json:"network"`
	Inputs   []KeyInput        `json:"inputs"`
}

// Digest is the SHA-256 of the canonical encoding of k: every field tagged
// and length-prefixed, maps and sets sorted, so the same parts give the same
// digest on every machine and in every run regardless of map order or the
// order in which inputs were listed.
func (k *KeyParts) Digest() cas.Digest {
	e := encoder{h: cas.NewHasher()}
	e.str('V', keyVersion)
	e.str('P', k.Package)
	e.strs('C', k.Cmds, false)
	envKeys := make([]string, 0, len(k.Env))
	for name := range k.Env {
		envKeys = append(envKeys, name)
	}
	sort.Strings(envKeys)
	e.uint('E', uint64(len(envKeys)))
	for _, name := range envKeys {
		e.str('k', name)
		e.str('v', k.Env[name])
	}
	e.strs('S', k.Secrets, true)
	e.str('I', k.Image)
	e.str('F', k.Platform)
	e.strs('O', k.Outs, true)
	if k.Network {
		e.uint('N', 1)
	} else {
		e.uint('N', 0)
	}
	in := append([]KeyInput(nil), k.Inputs...)
	sort.Slice(in, func(i, j int) bool { return in[i].Path < in[j].Path })
	e.uint('T', uint64(len(in)))
	for _, f := range in {
		e.str('p', f.Path)
		e.bytes('d', f.Digest[:])
		flags := uint64(0)
		if f.Exec {
			flags |= 1
		}
		if f.Tree {
			flags |= 2
		}
		e.uint('x', flags)
	}
	return e.h.Sum()
}

// encoder writes tag, uvarint length, bytes: unambiguous for any content.
type encoder struct {
	h   *cas.Hasher
	buf [binary.MaxVarintLen64 + 1]byte
}

func (e *encoder) bytes(tag byte, b []byte) {
	e.buf[0] = tag
	n := binary.PutUvarint(e.buf[1:], uint64(len(b)))
	e.h.Write(e.buf[:n+1])
	e.h.Write(b)
}

func (e *encoder) str(tag byte, s string) { e.bytes(tag, []byte(s)) }

func (e *encoder) uint(tag byte, v uint64) {
	e.buf[0] = tag
	n := binary.PutUvarint(e.buf[1:], v)
	e.h.Write(e.buf[:n+1])
}

func (e *encoder) strs(tag byte, ss []string, sorted bool) {
	if sorted {
		ss = append([]string(nil), ss...)
		sort.Strings(ss)
	}
	e.uint(tag, uint64(len(ss)))
	for _, s := range ss {
		e.str('s', s)
	}
}
