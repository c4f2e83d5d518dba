// Package web is the front end as Go sees it: index.html and the bundle
// that //web:bundle builds, embedded into the service that serves them.
package web

import "embed"

// Files holds index.html and out/app.js.
//
//go:embed index.html out/app.js
var Files embed.FS
