package sandbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestRunRequestEncoding(t *testing.T) {
	tests := []struct {
		name string
		req  runRequest
	}{
		{"empty", runRequest{}},
		{"one command", runRequest{Cmds: []string{"cat src/a.txt | md5sum > out/a.txt"}, Env: []string{"PATH=/usr/bin", "HOME=/mc/home"}, Dir: "/mc/ws/p"}},
		{"several, odd bytes", runRequest{Cmds: []string{"", "echo 'x\x00y'", "printf '\\n'"}, Env: []string{"A=é", "B="}, Dir: "/mc/ws"}},
		{"long", runRequest{Cmds: []string{strings.Repeat("x", 100000)}, Env: make([]string, 300), Dir: strings.Repeat("d/", 200)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.req.encode(nil)
			var got runRequest
			if err := got.decode(b); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.req) {
				t.Errorf("round trip = %+v, want %+v", got, tc.req)
			}
			// Every truncation, and a byte too many, is refused.
			for n := 0; n < len(b); n++ {
				if err := new(runRequest).decode(b[:n]); err == nil {
					t.Fatalf("a request cut to %d of %d bytes was accepted", n, len(b))
				}
			}
			if err := new(runRequest).decode(append(b, 0)); err == nil {
				t.Error("a request with a trailing byte was accepted")
			}
		})
	}
}

func TestRunExitEncoding(t *testing.T) {
	tests := []struct {
		name string
		exit runExit
	}{
		{"success", runExit{}},
		{"exit status", runExit{Code: 3}},
		{"signal", runExit{Signal: 9}},
		{"negative", runExit{Code: -1}},
		{"broken", runExit{Err: "processes [12] survive SIGKILL", Broken: true}},
		{"not started", runExit{Err: "starting /bin/sh in /mc/ws/p: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.exit.encode(nil)
			var got runExit
			if err := got.decode(b); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != tc.exit {
				t.Errorf("round trip = %+v, want %+v", got, tc.exit)
			}
			for n := 0; n < len(b); n++ {
				if err := new(runExit).decode(b[:n]); err == nil {
					t.Fatalf("an exit cut to %d of %d bytes was accepted", n, len(b))
				}
			}
		})
	}
}
