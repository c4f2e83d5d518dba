package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultPlatform is the platform of built images and of images pulled from
// an index when no other is asked for.
const DefaultPlatform = "linux/amd64"

// Options configures registry access.
type Options struct {
	// Keychain finds credentials for a registry. Nil means
	// authn.DefaultKeychain (docker config.json and credential helpers).
	Keychain authn.Keychain
	// Insecure allows plain http for every registry. It is not needed for
	// localhost, 127.0.0.1, ::1 and RFC 1918 addresses, which
	// go-containerregistry already reaches over http.
	Insecure bool
	// Retries is how many times a transient failure (connection refused or
	// reset, 5xx, 429) is retried; 0 means 3, negative means none.
	Retries int
	// Transport carries the HTTP requests; nil means remote.DefaultTransport.
	// Tests use it to count requests.
	Transport http.RoundTripper
	// Platform selects the image of an index in Pull; "" means DefaultPlatform.
	Platform string
}

// RegistryError is a failure talking to a registry: unreachable after the
// retries, credentials refused, or an error answer.
type RegistryError struct {
	Registry string // host[:port], e.g. "127.0.0.1:5000"
	Status   int    // HTTP status when the registry answered, 0 when it did not
	Err      error
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("registry %s: %v", e.Registry, e.Err)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// NotFound reports whether the registry answered that the image or blob does
// not exist (a user error rather than an infrastructure one).
func (e *RegistryError) NotFound() bool { return e.Status == http.StatusNotFound }

// ReferenceError is a malformed registry reference or repository.
type ReferenceError struct {
	Ref    string
	Reason string
}

func (e *ReferenceError) Error() string {
	return fmt.Sprintf("invalid image reference %q: %s", e.Ref, e.Reason)
}

// registryError wraps err, which came from talking to reg, so callers can
// name the registry.
func registryError(reg name.Registry, err error) error {
	if err == nil {
		return nil
	}
	re := &RegistryError{Registry: reg.RegistryStr(), Err: err}
	var te *transport.Error
	if errors.As(err, &te) {
		re.Status = te.StatusCode
	}
	return re
}

func (o Options) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// retryBackoff gives attempts = retries+1, waiting 0.2 s, 0.6 s, 1.8 s…, so an
// unreachable registry fails within a few seconds with the default 3.
func (o Options) retryBackoff() remote.Backoff {
	retries := o.Retries
	switch {
	case retries == 0:
		retries = 3
	case retries < 0:
		retries = 0
	}
	return remote.Backoff{Duration: 200 * time.Millisecond, Factor: 3, Jitter: 0.1, Steps: retries + 1}
}

// transient extends go-containerregistry's notion of a retryable error with
// a refused connection: a registry that is restarting answers again shortly.
func transient(err error) bool {
	var tmp interface{ Temporary() bool }
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &tmp) && tmp.Temporary():
		return true
	}
	for _, target := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, net.ErrClosed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func (o Options) remoteOptions() []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{
		remote.WithAuthFromKeychain(kc),
		remote.WithRetryBackoff(o.retryBackoff()),
		remote.WithRetryPredicate(transient),
		remote.WithUserAgent("mc"),
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return opts
}
