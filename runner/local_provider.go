package runner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LocalProvider runs each "instance" as a process group on this machine:
// `sh user-data` in a directory of its own, with this process's environment
// (which stands in for an instance role: the agent's S3 credentials come from
// it). Instances are recorded in files under Dir, per workspace, so that
// `mc runners list|reap --runners=local` in another process finds them, and
// a recorded PID is trusted only with its process start time.
//
// An untrusted build's instances get the untrusted identity instead: the
// environment's AWS credentials replaced by MC_UNTRUSTED_AWS_ACCESS_KEY_ID,
// MC_UNTRUSTED_AWS_SECRET_ACCESS_KEY (and MC_UNTRUSTED_AWS_SESSION_TOKEN),
// whose policy (iampolicy.Untrusted) cannot write the trusted tier. Without
// them no such instance is launched.
type LocalProvider struct {
	Dir string
	// Env is the instances' environment; nil: os.Environ().
	Env []string
}

// untrustedPrefix marks the untrusted identity's variables in LocalProvider's
// environment.
const untrustedPrefix = "MC_UNTRUSTED_"

// untrustedEnv is env with every AWS credential source replaced by the
// untrusted identity's keys (MC_UNTRUSTED_AWS_*), or an error when env has
// none: the host's keys, profiles and credential files never reach an
// untrusted build's runner.
func untrustedEnv(env []string) ([]string, error) {
	own := map[string]string{}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, untrustedPrefix+"AWS_"):
			own[strings.TrimPrefix(k, untrustedPrefix)] = v
		case strings.HasPrefix(k, "AWS_") && k != "AWS_REGION" && k != "AWS_DEFAULT_REGION":
			// credentials, profiles, credential files, web identity, container endpoints
		default:
			out = append(out, kv)
		}
	}
	if own["AWS_ACCESS_KEY_ID"] == "" || own["AWS_SECRET_ACCESS_KEY"] == "" {
		return nil, errors.New("local runner: an untrusted build's runner needs the untrusted identity's credentials (MC_UNTRUSTED_AWS_ACCESS_KEY_ID and MC_UNTRUSTED_AWS_SECRET_ACCESS_KEY, a policy that writes only the untrusted tier); not launched with mc's own")
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if v := own[k]; v != "" {
			out = append(out, k+"="+v)
		}
	}
	// No shared config or credentials file either: the SDK must not find
	// another identity to fall back on.
	return append(out, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"), nil
}

var _ Provider = (*LocalProvider)(nil)

type localRecord struct {
	ID       string            `json:"id"`
	PID      int               `json:"pid"`
	Start    uint64            `json:"start"`
	Tags     map[string]string `json:"tags"`
	Launched time.Time         `json:"launched"`
}

// Name is "local".
func (p *LocalProvider) Name() string { return "local" }

func (p *LocalProvider) wsDir(workspace string) string {
	h := sha256.Sum256([]byte(workspace))
	return filepath.Join(p.Dir, "ws", hex.EncodeToString(h[:8]))
}

func (p *LocalProvider) instDir(id string) string { return filepath.Join(p.Dir, "instances", id) }

// Launch starts the user-data as a new process group.
func (p *LocalProvider) Launch(ctx context.Context, spec LaunchSpec) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	env := p.Env
	if env == nil {
		env = os.Environ()
	}
	if spec.Untrusted {
		var err error
		if env, err = untrustedEnv(env); err != nil {
			return "", err
		}
	}
	id := "local-" + hex.EncodeToString(rnd[:])
	dir := p.instDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("local runner: %w", err)
	}
	script := filepath.Join(dir, "user-data")
	if err := os.WriteFile(script, []byte(spec.UserData), 0o600); err != nil {
		return "", fmt.Errorf("local runner: %w", err)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return "", fmt.Errorf("local runner: %w", err)
	}
	defer console.Close()
	cmd := osexec.Command("/bin/sh", script)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Env = append(env[:len(env):len(env)], "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("local runner: %w", err)
	}
	go cmd.Wait() // reap it while we live; init does after
	start, _ := procStart(cmd.Process.Pid)
	rec := localRecord{ID: id, PID: cmd.Process.Pid, Start: start, Tags: spec.Tags(), Launched: time.Now()}
	wd := p.wsDir(spec.Workspace)
	if err := os.MkdirAll(wd, 0o700); err == nil {
		err = os.WriteFile(filepath.Join(wd, id+".json"), encode(rec), 0o600)
	}
	if err != nil {
		_ = killGroup(rec.PID)
		return "", fmt.Errorf("local runner: recording %s: %w", id, err)
	}
	return id, nil
}

func (p *LocalProvider) records() (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(p.Dir, "ws", "*", "*.json"))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, f := range files {
		m[strings.TrimSuffix(filepath.Base(f), ".json")] = f
	}
	return m, nil
}

func readRecord(file string) (*localRecord, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var r localRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &r, nil
}

// Terminate kills the instances' process groups and forgets them.
func (p *LocalProvider) Terminate(ctx context.Context, ids []string) error {
	recs, err := p.records()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		f, ok := recs[id]
		if !ok {
			continue
		}
		r, err := readRecord(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if procAlive(r.PID, r.Start) {
			if err := killGroup(r.PID); err != nil {
				errs = append(errs, fmt.Errorf("terminating %s: %w", id, err))
				continue
			}
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		// Its disk goes with it, as an EC2 root volume does.
		if err := os.RemoveAll(p.instDir(id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List returns the workspace's instances. Ended ones are reported once as
// terminated, then forgotten.
func (p *LocalProvider) List(ctx context.Context, workspace string) ([]Instance, error) {
	files, err := filepath.Glob(filepath.Join(p.wsDir(workspace), "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, f := range files {
		r, err := readRecord(f)
		if err != nil {
			continue // being written, or garbage: not an instance
		}
		st := StateRunning
		if !procAlive(r.PID, r.Start) {
			st = StateTerminated
			_ = os.Remove(f)
			_ = os.RemoveAll(p.instDir(r.ID)) // its disk goes with it
		}
		out = append(out, Instance{ID: r.ID, State: st, Tags: r.Tags, Launched: r.Launched})
	}
	return out, nil
}

// Reach says where a kept local runner's files are.
func (p *LocalProvider) Reach(id string) string {
	return fmt.Sprintf("local runner %s: its files and console.log are in %s (the stage's log names the kept sandbox); end it with `mc runners reap --runners=local --all`", id, p.instDir(id))
}
