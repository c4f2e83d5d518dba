package runner

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// Secrets never rest in the bucket in plain text. The agent makes a NaCl box
// key pair at boot and publishes the public half in every heartbeat (the
// first included); the coordinator seals the job's secrets to that key with
// an anonymous box (Curve25519, XSalsa20-Poly1305, an ephemeral sender key)
// and writes only the sealed blob as runs/<run>/<job>/secrets; the agent
// opens it with the private half, which exists only in its memory, and
// deletes the object. Whoever reads the bucket — the read-only identity,
// another runner, a backup — gets ciphertext that no key but that runner's
// opens. A runner that publishes no key gets no secrets: the job fails with
// a message, never falls back to plain text.
//
// Authenticity of the key. It travels through the bucket, so whoever can
// write runs/<run>/<job>/heartbeat could publish a key of its own and have
// the secrets sealed to it. The policies of package iampolicy (the README's)
// give write access to runs/ only to trusted identities: trusted builds'
// coordinators and trusted runners. The read-only identity writes nothing;
// untrusted writers and untrusted runners write only under untrusted/, where
// untrusted builds' jobs live, and those never carry secrets (the executor
// refuses to send any). So a forged key needs credentials that could as well
// rewrite the job's commands to print its secrets: it gives an attacker
// nothing the policies do not already give. (The same holds for a sealed
// blob written by someone else: anyone may seal to a public key, but only
// identities that could rewrite the job can write it.)

// sealedKeyLen is the size of a box public key.
const sealedKeyLen = 32

// secretsWait bounds how long an agent whose job names secrets waits for
// them: the coordinator sends them as soon as it sees the agent's heartbeat,
// within a poll, unless it lost the shared cache (2 min at most).
const secretsWait = 5 * time.Minute

// agentKey is an agent's key pair, made at boot, kept in memory only.
type agentKey struct {
	pub, priv *[32]byte
}

func newAgentKey() (*agentKey, error) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making the agent's key pair: %w", err)
	}
	return &agentKey{pub: pub, priv: priv}, nil
}

// open opens a sealed secrets object.
func (k *agentKey) open(sealed []byte) (map[string]string, error) {
	plain, ok := box.OpenAnonymous(nil, sealed, k.pub, k.priv)
	if !ok {
		return nil, errors.New("the secrets object does not open with this runner's key (sealed to another key, or altered)")
	}
	secrets := map[string]string{}
	if err := json.Unmarshal(plain, &secrets); err != nil {
		return nil, fmt.Errorf("decoding the secrets: %w", err)
	}
	return secrets, nil
}

// sealSecrets seals secrets to the public key pub (from a heartbeat).
func sealSecrets(pub []byte, secrets map[string]string) ([]byte, error) {
	if len(pub) != sealedKeyLen {
		return nil, fmt.Errorf("public key of %d bytes, want %d", len(pub), sealedKeyLen)
	}
	var k [32]byte
	copy(k[:], pub)
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	return box.SealAnonymous(nil, plain, &k, rand.Reader)
}

// errNoKey is a runner that published no public key: it gets no secrets.
var errNoKey = errors.New("published no public key in its heartbeat; secrets are sent only sealed to their runner's key, so none were sent (is the runner's mc older than sealed secrets? MC_RUNNER_BINARY, a baked image)")

// sendSecrets seals secrets to the key in the heartbeat of job directory dir
// and writes them there. It reports false, nil while the runner has not
// written a heartbeat yet.
func (e *Executor) sendSecrets(ctx context.Context, dir string, secrets map[string]string) (bool, error) {
	raw, err := e.objs.Get(ctx, dir+objHeartbeat)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, nil // transient: the next poll tries again, the lease covers the rest
	}
	var hb Heartbeat
	if err := json.Unmarshal(raw, &hb); err != nil {
		return false, fmt.Errorf("sent a heartbeat that does not decode: %w", err)
	}
	if len(hb.Key) == 0 {
		return false, errNoKey
	}
	sealed, err := sealSecrets(hb.Key, secrets)
	if err != nil {
		return false, fmt.Errorf("published a key the secrets cannot be sealed to: %w", err)
	}
	if err := withRetry(ctx, 30*time.Second, func() error { return e.objs.Put(ctx, dir+objSecrets, sealed) }); err != nil {
		return false, fmt.Errorf("did not get its secrets: writing them sealed: %w", err)
	}
	return true, nil
}

// receiveSecrets waits for the job's sealed secrets, opens them and deletes
// the object before anything runs (one-time).
func (a *agent) receiveSecrets(ctx context.Context) (map[string]string, error) {
	deadline := time.Now().Add(secretsWait)
	lastCheck := time.Now()
	for {
		raw, err := a.objs.Get(ctx, a.jobDir+objSecrets)
		if err == nil {
			if err := withRetry(ctx, agentRetry, func() error { return a.objs.Delete(ctx, a.jobDir+objSecrets) }); err != nil {
				return nil, fmt.Errorf("deleting the secrets: %w", err)
			}
			return a.key.open(raw)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		now := time.Now()
		if now.After(deadline) {
			return nil, fmt.Errorf("the job's sealed secrets did not come within %s (last error: %v)", secretsWait, err)
		}
		if now.Sub(lastCheck) >= runCheck {
			lastCheck = now
			if why := a.runOver(ctx, now); why != "" {
				return nil, fmt.Errorf("%s before the job's secrets came", why)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(a.o.Poll):
		}
	}
}
