package runc

import "io"

// output passes the container's output on to w, keeping its first error
// and discarding the rest after it: the output is always read to the end,
// so that a failing w never blocks runc, and with it the container, on a
// full pipe.
type output struct {
	w   io.Writer
	err error
}

func (o *output) Write(p []byte) (int, error) {
	if o.err == nil {
		_, o.err = o.w.Write(p)
	}
	return len(p), nil
}
