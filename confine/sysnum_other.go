//go:build !linux || !(amd64 || arm64)

package confine

// No filter is written for this platform: Program refuses (auditArch 0).
const (
	auditArch  = 0
	foreignBit = 0
)

var sysnums map[string]int
