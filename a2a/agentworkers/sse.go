package agentworkers

import (
	"bufio"
	"bytes"
	"io"
)

// readEvents calls fn with the data of each server-sent event of r as the
// event ends (its blank line), the data lines of one event joined by
// newlines, until r ends or fn fails. Events without data are skipped. A
// line longer than max fails the stream.
func readEvents(r io.Reader, max int, fn func(data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), max)
	var data []byte
	has := false
	dispatch := func() error {
		if !has {
			return nil
		}
		d := data
		data, has = data[:0], false
		if len(bytes.TrimSpace(d)) == 0 {
			return nil
		}
		return fn(d)
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if err := dispatch(); err != nil {
				return err
			}
			continue
		}
		v, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // event:, id:, retry: and comments
		}
		v, _ = bytes.CutPrefix(v, []byte(" "))
		if has {
			data = append(data, '\n')
		}
		data, has = append(data, v...), true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return dispatch() // a last event the stream ended without its blank line
}
