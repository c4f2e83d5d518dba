package builtins

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mc-build/mc/graph"
)

// writeTree creates files (slash paths relative to a new temp dir) and
// returns the dir. A WORKSPACE.mc is added unless files has one.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if _, ok := files["WORKSPACE.mc"]; !ok {
		files["WORKSPACE.mc"] = ""
	}
	for name, content := range files {
		writeFile(t, root, name, content)
	}
	return root
}

func writeFile(t testing.TB, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// memKV is an in-memory KV.
type memKV struct {
	mu   sync.Mutex
	m    map[string][]byte
	puts int
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (kv *memKV) GetKV(_ context.Context, ns, key string) ([]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.m[ns+"\x00"+key], nil
}

func (kv *memKV) PutKV(_ context.Context, ns, key string, val []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.puts++
	kv.m[ns+"\x00"+key] = append([]byte(nil), val...)
	return nil
}

// evaluator returns an Evaluator over root after loading its WORKSPACE.mc.
func evaluator(t testing.TB, root string, kv KV) *Evaluator {
	t.Helper()
	ws, err := LoadWorkspace(context.Background(), root)
	if err != nil {
		t.Fatalf("LoadWorkspace: %v", err)
	}
	return NewEvaluator(ws, kv, nil)
}

// evalOne evaluates one package of a fresh workspace made of files.
func evalOne(t testing.TB, files map[string]string, pkg string) (*graph.Package, error) {
	t.Helper()
	e := evaluator(t, writeTree(t, files), nil)
	pkgs, err := e.Packages(context.Background(), []string{pkg})
	if err != nil {
		return nil, err
	}
	return pkgs[0], nil
}
