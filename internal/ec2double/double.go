// Package ec2double is a test double of the EC2 control plane: enough of
// the EC2 Query API (RunInstances, DescribeInstances, TerminateInstances,
// CreateTags, DescribeTags) on 127.0.0.1 for aws-sdk-go-v2's ec2 client.
//
// It is a double of the control plane only. Its "instances" are process
// groups on this machine that run the real user-data (base64-decoded) with
// `sh`, after a configurable boot delay; a `shutdown` command first in their
// PATH stands in for the machine powering off (`shutdown -h now` kills the
// group at once, `shutdown -h +M` after M minutes), and an instance whose
// process group has exited is terminated (shutdown behaviour terminate).
// Requests are not authenticated. Knobs inject capacity and throttling
// errors and instances that never boot.
package ec2double

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Server is a running double.
type Server struct {
	// URL is the endpoint (MC_EC2_ENDPOINT), e.g. "http://127.0.0.1:41234".
	URL string
	// Dir holds the instances' directories.
	Dir string
	// Env is the instances' environment (standing in for an instance role).
	Env []string

	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	bootDelay time.Duration
	fail      []string // error codes of the next RunInstances calls
	neverBoot int
	insts     map[string]*instance
	order     []string
	launches  []url.Values // every RunInstances request's parameters
}

type instance struct {
	id, itype, ami string
	state          string
	tags           map[string]string
	launched       time.Time
	pgid           int
	cmd            *exec.Cmd
}

// Start serves a double on a free loopback port; dir holds the instances.
func Start(dir string, env []string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Dir: dir, Env: env, ln: ln, insts: map[string]*instance{}}
	s.srv = &http.Server{Handler: s}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops serving and kills every instance.
func (s *Server) Close() {
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.insts {
		s.kill(in)
	}
}

// SetBootDelay sets how long instances stay pending before their user-data runs.
func (s *Server) SetBootDelay(d time.Duration) { s.mu.Lock(); s.bootDelay = d; s.mu.Unlock() }

// FailNext makes the next n RunInstances calls fail with code
// (InsufficientInstanceCapacity, RequestLimitExceeded, ...).
func (s *Server) FailNext(code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, code)
	}
}

// NeverBoot makes the next n instances stay pending forever, running nothing.
func (s *Server) NeverBoot(n int) { s.mu.Lock(); s.neverBoot += n; s.mu.Unlock() }

// Live returns the IDs of pending or running instances.
func (s *Server) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, id := range s.order {
		if st := s.insts[id].state; st == "pending" || st == "running" {
			ids = append(ids, id)
		}
	}
	return ids
}

// Launches returns the parameters of every RunInstances request so far.
func (s *Server) Launches() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.launches...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, 400, "MalformedQueryString", err.Error())
		return
	}
	f := r.PostForm
	switch f.Get("Action") {
	case "RunInstances":
		s.runInstances(w, f)
	case "DescribeInstances":
		s.describeInstances(w, f)
	case "TerminateInstances":
		s.terminateInstances(w, f)
	case "CreateTags":
		s.createTags(w, f)
	case "DescribeTags":
		s.describeTags(w, f)
	default:
		writeError(w, 400, "InvalidAction", "the double does not implement "+f.Get("Action"))
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-double</RequestID></Response>`,
		esc(code), esc(msg))
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeXML(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>%s`, body)
}

// indexed returns the values of prefix.1, prefix.2, ... (the Query API's lists).
func indexed(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[fmt.Sprintf("%s.%d", prefix, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) runInstances(w http.ResponseWriter, f url.Values) {
	s.mu.Lock()
	s.launches = append(s.launches, f)
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		status := 500
		if code == "RequestLimitExceeded" {
			status = 503
		}
		writeError(w, status, code, "injected by the EC2 double")
		return
	}
	s.mu.Unlock()
	ud, err := base64.StdEncoding.DecodeString(f.Get("UserData"))
	if err != nil {
		writeError(w, 400, "InvalidParameterValue", "UserData: "+err.Error())
		return
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("TagSpecification.%d", i)
		rt := f.Get(p + ".ResourceType")
		if rt == "" {
			break
		}
		if rt != "instance" {
			continue
		}
		for j := 1; ; j++ {
			k := f.Get(fmt.Sprintf("%s.Tag.%d.Key", p, j))
			if k == "" {
				break
			}
			tags[k] = f.Get(fmt.Sprintf("%s.Tag.%d.Value", p, j))
		}
	}
	in := &instance{id: newID("i-"), itype: f.Get("InstanceType"), ami: f.Get("ImageId"), state: "pending",
		tags: tags, launched: time.Now().UTC()}
	s.mu.Lock()
	s.insts[in.id] = in
	s.order = append(s.order, in.id)
	never := s.neverBoot > 0
	if never {
		s.neverBoot--
	}
	delay := s.bootDelay
	s.mu.Unlock()
	if !never {
		go s.boot(in, ud, delay)
	}
	writeXML(w, fmt.Sprintf(`<RunInstancesResponse xmlns="%s"><requestId>req-double</requestId><reservationId>%s</reservationId><ownerId>000000000000</ownerId><instancesSet>%s</instancesSet></RunInstancesResponse>`,
		xmlns, newID("r-"), s.itemXML(in)))
}

// shutdownShim powers the "machine" off: the instance is its process group.
const shutdownShim = `#!/bin/sh
# ec2double: shutdown [-h] now|+MINUTES, for a process-group "instance".
for a in "$@"; do case "$a" in
  now) kill -KILL 0 ;;
  +*) m=${a#+}; ( sleep $((m * 60)); kill -KILL 0 ) >/dev/null 2>&1 & exit 0 ;;
esac; done
`

func (s *Server) boot(in *instance, userData []byte, delay time.Duration) {
	time.Sleep(delay)
	dir := filepath.Join(s.Dir, in.id)
	bin := filepath.Join(dir, "bin")
	err := os.MkdirAll(bin, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(bin, "shutdown"), []byte(shutdownShim), 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "user-data"), userData, 0o600)
	}
	console, cerr := os.Create(filepath.Join(dir, "console.log"))
	if err != nil || cerr != nil {
		s.setState(in, "terminated")
		return
	}
	defer console.Close()
	cmd := exec.Command("/bin/sh", filepath.Join(dir, "user-data"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = console, console
	path := bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	cmd.Env = append(append([]string{}, s.Env...), "PATH="+path, "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	if in.state != "pending" { // terminated while booting
		s.mu.Unlock()
		return
	}
	if err := cmd.Start(); err != nil {
		in.state = "terminated"
		s.mu.Unlock()
		return
	}
	in.cmd, in.pgid, in.state = cmd, cmd.Process.Pid, "running"
	s.mu.Unlock()
	_ = cmd.Wait()
	// The user-data's shell is gone: the machine powered off (or crashed);
	// make sure nothing of its group survives it, and drop its disk, as
	// DeleteOnTermination does (a benchmark launches hundreds).
	_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
	s.setState(in, "terminated")
	_ = os.RemoveAll(dir)
}

func (s *Server) setState(in *instance, st string) {
	s.mu.Lock()
	in.state = st
	s.mu.Unlock()
}

// kill terminates in; called with s.mu held.
func (s *Server) kill(in *instance) {
	if in.pgid > 0 {
		_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
	}
	in.state = "terminated"
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}

// itemXML is one instance as an instancesSet item; called without s.mu.
func (s *Server) itemXML(in *instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var tags []string
	keys := make([]string, 0, len(in.tags))
	for k := range in.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tags = append(tags, fmt.Sprintf("<item><key>%s</key><value>%s</value></item>", esc(k), esc(in.tags[k])))
	}
	return fmt.Sprintf(`<item><instanceId>%s</instanceId><imageId>%s</imageId><instanceState><code>%d</code><name>%s</name></instanceState><instanceType>%s</instanceType><launchTime>%s</launchTime><tagSet>%s</tagSet></item>`,
		in.id, esc(in.ami), stateCodes[in.state], in.state, esc(in.itype), in.launched.Format(time.RFC3339), strings.Join(tags, ""))
}

func (s *Server) describeInstances(w http.ResponseWriter, f url.Values) {
	ids := map[string]bool{}
	for _, id := range indexed(f, "InstanceId") {
		ids[id] = true
	}
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for i := 1; ; i++ {
		n := f.Get(fmt.Sprintf("Filter.%d.Name", i))
		if n == "" {
			break
		}
		filters = append(filters, filter{n, indexed(f, fmt.Sprintf("Filter.%d.Value", i))})
	}
	s.mu.Lock()
	var match []*instance
	for _, id := range s.order {
		in := s.insts[id]
		if len(ids) > 0 && !ids[id] {
			continue
		}
		ok := true
		for _, fl := range filters {
			var v string
			switch {
			case strings.HasPrefix(fl.name, "tag:"):
				v = in.tags[strings.TrimPrefix(fl.name, "tag:")]
			case fl.name == "instance-state-name":
				v = in.state
			default:
				continue
			}
			found := false
			for _, want := range fl.values {
				found = found || want == v
			}
			ok = ok && found
		}
		if ok {
			match = append(match, in)
		}
	}
	s.mu.Unlock()
	var items []string
	for _, in := range match {
		items = append(items, fmt.Sprintf(`<item><reservationId>r-double</reservationId><ownerId>000000000000</ownerId><instancesSet>%s</instancesSet></item>`, s.itemXML(in)))
	}
	writeXML(w, fmt.Sprintf(`<DescribeInstancesResponse xmlns="%s"><requestId>req-double</requestId><reservationSet>%s</reservationSet></DescribeInstancesResponse>`,
		xmlns, strings.Join(items, "")))
}

func (s *Server) terminateInstances(w http.ResponseWriter, f url.Values) {
	var items []string
	s.mu.Lock()
	for _, id := range indexed(f, "InstanceId") {
		in, ok := s.insts[id]
		if !ok {
			s.mu.Unlock()
			writeError(w, 400, "InvalidInstanceID.NotFound", "The instance ID '"+id+"' does not exist")
			return
		}
		prev := in.state
		s.kill(in)
		items = append(items, fmt.Sprintf(`<item><instanceId>%s</instanceId><currentState><code>48</code><name>terminated</name></currentState><previousState><code>%d</code><name>%s</name></previousState></item>`,
			id, stateCodes[prev], prev))
	}
	s.mu.Unlock()
	writeXML(w, fmt.Sprintf(`<TerminateInstancesResponse xmlns="%s"><requestId>req-double</requestId><instancesSet>%s</instancesSet></TerminateInstancesResponse>`,
		xmlns, strings.Join(items, "")))
}

func (s *Server) createTags(w http.ResponseWriter, f url.Values) {
	s.mu.Lock()
	for _, id := range indexed(f, "ResourceId") {
		if in, ok := s.insts[id]; ok {
			for j := 1; ; j++ {
				k := f.Get(fmt.Sprintf("Tag.%d.Key", j))
				if k == "" {
					break
				}
				in.tags[k] = f.Get(fmt.Sprintf("Tag.%d.Value", j))
			}
		}
	}
	s.mu.Unlock()
	writeXML(w, fmt.Sprintf(`<CreateTagsResponse xmlns="%s"><requestId>req-double</requestId><return>true</return></CreateTagsResponse>`, xmlns))
}

func (s *Server) describeTags(w http.ResponseWriter, f url.Values) {
	s.mu.Lock()
	var items []string
	for _, id := range s.order {
		in := s.insts[id]
		keys := make([]string, 0, len(in.tags))
		for k := range in.tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			items = append(items, fmt.Sprintf(`<item><resourceId>%s</resourceId><resourceType>instance</resourceType><key>%s</key><value>%s</value></item>`,
				id, esc(k), esc(in.tags[k])))
		}
	}
	s.mu.Unlock()
	writeXML(w, fmt.Sprintf(`<DescribeTagsResponse xmlns="%s"><requestId>req-double</requestId><tagSet>%s</tagSet></DescribeTagsResponse>`, xmlns, strings.Join(items, "")))
}
