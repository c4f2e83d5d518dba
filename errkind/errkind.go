// Package errkind holds the kinds of error mc's commands end with, as
// values any library can return: a usage mistake, a failure of something mc
// relies on, a stage that failed, a test pattern matching no tests.
// cmd/mc maps them to the exit codes of SPEC §6.
package errkind

import (
	"errors"
	"fmt"
)

// UsageError is a mistake on the command line (exit 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// InfraError is a failure of something mc relies on: disk, cache, runtime
// (exit 3).
type InfraError struct{ Err error }

func (e *InfraError) Error() string { return e.Err.Error() }
func (e *InfraError) Unwrap() error { return e.Err }

// Infra returns err as an InfraError.
func Infra(err error) error { return &InfraError{Err: err} }

// NoTestsError is mc test's patterns matching no test stage: exit 4, as
// Bazel, so that CI notices a test pattern that has gone stale.
type NoTestsError struct{ Patterns string }

func (e *NoTestsError) Error() string {
	return fmt.Sprintf("no test targets match %s (a test is a stage declared with test = True)", e.Patterns)
}

// ErrStageFailed carries exit status 1 after the summary has been printed.
var ErrStageFailed = errors.New("one or more stages failed")

// Suggest is " (did you mean A, B?)" for names, "" for none.
func Suggest(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (did you mean " + joinComma(names) + "?)"
}

func joinComma(names []string) string {
	s := names[0]
	for _, n := range names[1:] {
		s += ", " + n
	}
	return s
}
