package graph

import (
	"sort"
	"strings"
	"time"
)

// knownAttrs lists every attribute attr() accepts, across kinds.
var knownAttrs = map[string]bool{
	"name": true, "srcs": true, "deps": true, "cmd": true, "outs": true, "image": true, "env": true,
	"secrets": true, "tags": true, "test": true, "deploy": true, "cache": true, "network": true,
	"timeout": true, "cache_mounts": true, "machine": true,
	"base": true, "files": true, "entrypoint": true, "workdir": true, "labels": true, "repository": true,
}

// AttrValues returns attribute name of rule t as strings, the way `mc query
// 'attr(...)'` matches them, and whether t's kind has that attribute:
// strings as written; lists element by element; labels in canonical form
// (//pkg:name); dicts as KEY=VALUE elements sorted by key; booleans True or
// False; timeout like 30m ("" for none).
func AttrValues(t *Target, name string) ([]string, bool) {
	if name == "name" {
		return []string{t.Label.Name}, true
	}
	switch t.Kind {
	case KindStage:
		switch name {
		case "srcs":
			return labelStrings(t.Srcs), true
		case "deps":
			return labelStrings(t.Deps), true
		case "cmd":
			return t.Cmds, true
		case "outs":
			return t.Outs, true
		case "image":
			return []string{t.Image}, true
		case "env":
			return dictItems(t.Env), true
		case "secrets":
			return t.Secrets, true
		case "tags":
			return t.Tags, true
		case "test":
			return []string{pyBool(t.Test)}, true
		case "deploy":
			return []string{pyBool(t.Deploy)}, true
		case "cache":
			return []string{pyBool(t.Cache)}, true
		case "network":
			return []string{pyBool(t.Network)}, true
		case "timeout":
			return []string{FormatTimeout(t.Timeout)}, true
		case "cache_mounts":
			return dictItems(t.CacheMounts), true
		case "machine":
			return dictItems(t.Machine), true
		}
	case KindFilegroup:
		if name == "srcs" {
			return labelStrings(t.Srcs), true
		}
	case KindImage:
		s := t.ImageSpec
		if s == nil {
			return nil, false
		}
		switch name {
		case "base":
			return []string{s.Base}, true
		case "files":
			items := make([]string, 0, len(s.Files))
			for d, l := range s.Files {
				items = append(items, d+"="+l.String())
			}
			sort.Strings(items)
			return items, true
		case "entrypoint":
			return s.Entrypoint, true
		case "cmd":
			return s.Cmd, true
		case "env":
			return dictItems(s.Env), true
		case "workdir":
			return []string{s.Workdir}, true
		case "labels":
			return dictItems(s.Labels), true
		case "repository":
			return []string{s.Repository}, true
		case "tags":
			return s.Tags, true
		}
	}
	return nil, false
}

func labelStrings(ls []Label) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

func dictItems(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// FormatTimeout spells a stage timeout the way BUILD.mc writes it ("30m",
// "1h30m", "45s"); "" for no timeout.
func FormatTimeout(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
