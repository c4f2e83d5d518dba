// Package server is `mc serve`: the CI server and its web interface.
//
// It receives GitHub webhooks (push, pull_request), checks the commit out
// into a workspace of its own and runs the mc binary on it as a subprocess
// (`mc test --output=json //...`), reading the JSON event stream of package
// exec from its standard output: the server never imports the build
// internals. Runs, stages, events and log lines are kept in a SQLite
// database under the data directory, so a restart loses nothing; runs that
// were in progress when the server stopped are shown as interrupted. Each run
// is reported to GitHub (package ghapi) as a check run named "mc", with a
// summary and annotations at the failures' lines (checks.go), or as a commit
// status (context "mc") where GitHub refuses the credential check runs.
// `mc build --report=URL` posts the events of a local build to the same
// history through the JSON API.
//
// Trust (SPEC §4a): pull requests build with --untrusted. A push run's
// deploy stages run in a second build (`mc build --deploy`) only once its
// commit is confirmed, with git ls-remote, as its branch's head; deliveries
// are remembered by the hash of their signed body, so a replay under a new
// delivery id is refused.
//
// The web pages are server-rendered html/template pages that read without
// JavaScript; a little plain JavaScript follows a live run through
// Server-Sent Events.
package server
