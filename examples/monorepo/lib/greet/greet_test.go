package greet

import "testing"

func TestHello(t *testing.T) {
	for in, want := range map[string]string{"": "hello, world", " mc ": "hello, mc"} {
		if got := Hello(in); got != want {
			t.Errorf("Hello(%q) = %q, want %q", in, got, want)
		}
	}
}
