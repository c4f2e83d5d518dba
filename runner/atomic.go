package runner

import "sync/atomic"

type atomicDuration struct{ v atomic.Int64 }

func (a *atomicDuration) Load() int64   { return a.v.Load() }
func (a *atomicDuration) Store(d int64) { a.v.Store(d) }

type atomicString struct{ v atomic.Value }

func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}
func (a *atomicString) Store(s string) { a.v.Store(s) }
