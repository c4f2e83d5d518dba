package main

import (
	"github.com/spf13/pflag"
)

// defaultAffectedPatterns makes //... the pattern of `mc build
// --affected-since=REV` without patterns: everything affected.
func defaultAffectedPatterns(fs *pflag.FlagSet, rev string) {
	if rev != "" && fs.NArg() == 0 {
		_ = fs.Parse([]string{"--", "//..."}) // the flags parsed before keep their values
	}
}
