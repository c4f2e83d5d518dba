package graph

import (
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"unicode/utf8"
)

// JSON is json.Marshal(p), byte for byte, written without
// reflection: the first build that records history encodes every stage's
// preimage, and for ten thousand stages the reflective encoder alone would
// take a good part of the time budget of recording.
func (p *KeyParts) JSON() []byte {
	b := make([]byte, 0, 256+len(p.Inputs)*120)
	b = append(b, `{"package":`...)
	b = appendJSONString(b, p.Package)
	b = append(b, `,"cmds":`...)
	b = appendJSONStrings(b, p.Cmds)
	if len(p.Env) > 0 {
		b = append(b, `,"env":{`...)
		for i, k := range sortedEnv(p.Env) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, p.Env[k])
		}
		b = append(b, '}')
	}
	if len(p.Secrets) > 0 {
		b = append(b, `,"secrets":`...)
		b = appendJSONStrings(b, p.Secrets)
	}
	if p.Image != "" {
		b = append(b, `,"image":`...)
		b = appendJSONString(b, p.Image)
	}
	b = append(b, `,"platform":`...)
	b = appendJSONString(b, p.Platform)
	b = append(b, `,"outs":`...)
	b = appendJSONStrings(b, p.Outs)
	b = append(b, `,"network":`...)
	b = strconv.AppendBool(b, p.Network)
	b = append(b, `,"inputs":`...)
	if p.Inputs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, in := range p.Inputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = appendJSONString(b, in.Path)
			b = append(b, `,"digest":"sha256:`...)
			b = hex.AppendEncode(b, in.Digest[:])
			b = append(b, '"')
			if in.Exec {
				b = append(b, `,"exec":true`...)
			}
			if in.Tree {
				b = append(b, `,"tree":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json writes it; strings needing
// more than plain copying (escapes, HTML characters, invalid UTF-8) are
// left to encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func sortedEnv(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
