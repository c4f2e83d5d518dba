package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/errkind"
)

// MinTokenLen is the shortest server token (MC_AUTH_TOKEN) mc serve takes:
// the token lets its holder start, cancel and rerun builds, and a short one
// can be guessed over the network. 24 characters of `openssl rand -hex 32`
// are 96 bits.
const MinTokenLen = 24

// CheckToken refuses a server token too short to resist guessing.
func CheckToken(tok string) error {
	if tok != "" && len(tok) < MinTokenLen {
		return fmt.Errorf("the server token (MC_AUTH_TOKEN) has %d characters, fewer than %d: it could be guessed; make one with `openssl rand -hex 32`", len(tok), MinTokenLen)
	}
	return nil
}

// Failed token checks (the sign-in form, the API's and the pages' bearer
// token) are counted per client address: after guessLimit of them within
// guessWindow the address is answered 429 without its token being compared,
// until its oldest failure in the window has aged out. A long token makes
// guessing hopeless already; the limit is the second wall, and it keeps one
// client's guessing out of everyone's logs.
const (
	defaultGuessLimit = 10
	guessWindow       = 10 * time.Minute
	// guessAddrs bounds the addresses remembered: beyond it the ones with
	// no failure in the window are forgotten.
	guessAddrs = 10_000
)

// errGuessing is a token check refused because its address failed too
// often.
var errGuessing = errors.New("too many wrong tokens from this address: try again later")

// guesses is the per-address count of failed token checks.
type guesses struct {
	limit int // < 0: no limit
	now   func() time.Time
	mu    sync.Mutex
	fails map[string][]time.Time // each address's failures in the window, oldest first
}

func newGuesses(limit int, now func() time.Time) *guesses {
	if limit == 0 {
		limit = defaultGuessLimit
	}
	return &guesses{limit: limit, now: now, fails: map[string][]time.Time{}}
}

// clientAddr is the address a request came from, an IPv6 one as its /64
// (one host can have all of it). A request from one of the trusted proxies
// (Config.TrustedProxies) came from the address the proxies put last in
// X-Forwarded-For that is not one of theirs: the header's earlier entries
// are whatever the client sent, so a client cannot pick its address.
// Without trusted proxies the header is ignored, and behind a proxy all
// clients share the proxy's count.
func clientAddr(req *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if isTrusted(addr, trusted) {
		hops := req.Header.Values("X-Forwarded-For")
		var all []string
		for _, h := range hops {
			all = append(all, strings.Split(h, ",")...)
		}
		for i := len(all) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
			if err != nil {
				break // not an address: what is left of the header is not the proxies'
			}
			addr = a.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// recent drops addr's failures older than the window and returns the rest.
func (g *guesses) recent(addr string, now time.Time) []time.Time {
	f := g.fails[addr]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= guessWindow {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(g.fails, addr)
	} else {
		g.fails[addr] = f
	}
	return f
}

// check compares tok with want for the client at addr: nil when they are
// equal, errGuessing when addr is over its limit (tok is then not
// compared), otherwise an error, and the failure counts unless tok was
// empty (a client without a token is not guessing).
func (g *guesses) check(addr, tok, want string) (retry time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	f := g.recent(addr, now)
	if g.limit > 0 && len(f) >= g.limit {
		return guessWindow - now.Sub(f[0]), errGuessing
	}
	if want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
		return 0, nil
	}
	if tok == "" {
		return 0, errors.New("no token") // not a guess: not counted
	}
	if len(g.fails) >= guessAddrs {
		for a := range g.fails {
			g.recent(a, now)
		}
	}
	if len(g.fails) < guessAddrs || g.fails[addr] != nil {
		f = append(f, now)
		if g.limit > 0 && len(f) > g.limit {
			f = f[len(f)-g.limit:]
		}
		g.fails[addr] = f
	}
	return 0, errors.New("wrong token")
}

// checkToken is guesses.check of tok against the server's token for req's
// client, logging refusals; on errGuessing it sets Retry-After on w.
func (s *Server) checkToken(w http.ResponseWriter, req *http.Request, tok string) error {
	addr := clientAddr(req, s.cfg.TrustedProxies)
	retry, err := s.guesses.check(addr, tok, s.cfg.AuthToken)
	switch {
	case errors.Is(err, errGuessing):
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Round(time.Second)/time.Second)+1))
		s.logf("a token from %s refused unread: %d wrong ones within %s", addr, s.guesses.limit, guessWindow)
	case err != nil && tok != "":
		s.logf("a wrong token from %s", addr)
	}
	return err
}

// ParseProxies reads --trusted-proxy values: addresses or CIDR prefixes.
func ParseProxies(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, errkind.Usagef("serve: --trusted-proxy %q is neither an address nor a CIDR prefix", v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
