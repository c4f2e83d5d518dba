package main

import "github.com/rogpeppe/go-internal/testscript"

// eventkey FILE TYPE LABEL VAR: set VAR to the action key of LABEL's event
// of TYPE in FILE (JSON events), to show that two builds computed the same
// key (untrusted*.txtar).
func cmdEventkey(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: eventkey file type label var")
	}
	for _, ev := range jsonEvents(ts, args[0]) {
		if ev["type"] == args[1] && ev["label"] == args[2] {
			k, _ := ev["key"].(string)
			if k == "" {
				ts.Fatalf("%s event of %s in %s has no key", args[1], args[2], args[0])
			}
			ts.Setenv(args[3], k)
			return
		}
	}
	ts.Fatalf("no %s event of %s in %s", args[1], args[2], args[0])
}
