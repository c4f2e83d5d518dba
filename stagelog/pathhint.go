package stagelog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The sandbox PATH explained. A stage gets the host's PATH, but the
// sandbox holds only the host's system directories and the PATH entries
// outside the home directories (exec.newBwrapRoot): ~/go/bin, ~/.cargo/bin,
// or pyenv and nvm shims under a home directory are not there, and a shim
// that is there fails when what it runs lives under a home directory. The
// stage then ends with 127 ("command not found"), from the shell or from
// inside the shim, which says nothing of why.

// notFound matches the shells' and env's "command not found" lines and
// captures the command: dash "sh: 1: foo: not found", bash "bash: line 1:
// foo: command not found", busybox "sh: foo: not found", exec in a script
// "exec: /x/foo: not found", env "/usr/bin/env: 'foo': No such file or
// directory".
var notFound = regexp.MustCompile(`(?:^|: )['‘]?([^\s:'‘’]+)['’]?: (?:command not found|not found|No such file or directory)$`)

// homeDirsOf are the directories the sandbox never shows: users' files.
func homeDirsOf(home string) []string {
	dirs := []string{"/root", "/home"}
	if filepath.IsAbs(home) && home != "/" {
		dirs = append(dirs, filepath.Clean(home))
	}
	return dirs
}

func underAny(p string, dirs []string) string {
	p = filepath.Clean(p)
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return d
		}
	}
	return ""
}

// sandboxPathHint explains a 127 from a stage run in the sandbox, given the
// end of its log and the host's PATH and HOME; "" when nothing on PATH
// explains it.
func sandboxPathHint(log []string, hostPath, home string) string {
	homes := homeDirsOf(home)
	var hidden []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(hostPath) {
		if !filepath.IsAbs(dir) || seen[dir] {
			continue
		}
		seen[dir] = true
		real := dir
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			real = r
		}
		if underAny(dir, homes) != "" || underAny(real, homes) != "" {
			hidden = append(hidden, dir)
		}
	}
	missing := ""
	for i := len(log) - 1; i >= 0 && missing == ""; i-- {
		if m := notFound.FindStringSubmatch(strings.TrimSpace(log[i])); m != nil {
			missing = m[1]
		}
	}
	var b strings.Builder
	switch {
	case missing != "" && filepath.IsAbs(missing) && underAny(missing, homes) != "":
		fmt.Fprintf(&b, "%s is under %s, which the sandbox does not hold (a shim or wrapper on PATH runs it).\n",
			missing, underAny(missing, homes))
	case missing != "" && !strings.Contains(missing, "/"):
		if p := lookPath(missing, hostPath); p != "" && underAny(p, homes) != "" {
			fmt.Fprintf(&b, "%s is %s on this machine, but %s is not visible inside the sandbox.\n", missing, p, filepath.Dir(p))
		} else if p != "" && isShim(p, homes) {
			fmt.Fprintf(&b, "%s is %s on this machine: a shim that runs a program under a home directory, which the sandbox does not hold.\n", missing, p)
		} else if p == "" && len(hidden) == 0 {
			return "" // not on the host either: a plain missing tool
		}
	}
	if len(hidden) == 0 && b.Len() == 0 {
		return ""
	}
	if len(hidden) > 0 {
		fmt.Fprintf(&b, "These PATH entries are under a home directory (%s) and not visible inside the sandbox:\n", strings.Join(homes, ", "))
		for _, d := range hidden {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	b.WriteString("Fix: call the tool by an absolute path the sandbox holds (install it under /usr/local or /opt), " +
		"run the stage in an image (image = \"...\") that has it, or make it an input of the stage " +
		"(a stage that builds or fetches it, or a cache mount).")
	return b.String()
}

// lookPath is exec.LookPath over an explicit PATH.
func lookPath(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// isShim reports whether p is a script that names a home directory: a
// pyenv, rbenv, asdf or nvm shim.
func isShim(p string, homes []string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	head := string(buf[:n])
	if !strings.HasPrefix(head, "#!") {
		return false
	}
	for _, h := range homes {
		if strings.Contains(head, h+"/") {
			return true
		}
	}
	return false
}
