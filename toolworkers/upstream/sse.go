package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
)

// sseScanner reads the data of Server-Sent Events (the text/event-stream format):
// "data:" lines accumulate until a blank line ends the event; "id:" sets the
// last event id (for Last-Event-ID on a reconnect); "event:", "retry:" and
// comments are skipped, as MCP carries everything in data.
type sseScanner struct {
	r      *bufio.Reader
	max    int
	data   []byte
	lastID string
}

// LastID is the last event id the stream set ("" if none).
func (s *sseScanner) LastID() string { return s.lastID }

func newSSEScanner(r io.Reader, max int) *sseScanner {
	return &sseScanner{r: bufio.NewReaderSize(r, 16<<10), max: max}
}

// sseScanners recycles scanners (and their 16 KiB buffers) between calls:
// every tools/call answered as SSE needs one only until its response arrives.
var sseScanners = sync.Pool{New: func() any { return newSSEScanner(nil, 0) }}

// getSSEScanner is newSSEScanner from the pool; putSSEScanner returns it once
// nothing it returned is used any more.
func getSSEScanner(r io.Reader, max int) *sseScanner {
	s := sseScanners.Get().(*sseScanner)
	s.r.Reset(r)
	s.max, s.data, s.lastID = max, s.data[:0], ""
	return s
}

func putSSEScanner(s *sseScanner) {
	s.r.Reset(nil)
	if cap(s.data) > 64<<10 {
		s.data = nil // a rare big event: don't keep its buffer
	}
	sseScanners.Put(s)
}

// Next returns the data of the next event (nil for an event without data).
func (s *sseScanner) Next() ([]byte, error) {
	s.data = s.data[:0]
	seen := false
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: gather the rest of it.
			full := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				if len(full) > s.max {
					return nil, fmt.Errorf("SSE line longer than %d bytes", s.max)
				}
				line, err = s.r.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err != nil && !(err == io.EOF && len(line) > 0) {
			if err == io.EOF && seen {
				return s.data, nil
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if seen {
				return s.data, nil
			}
			continue
		}
		seen = true
		if rest, ok := bytes.CutPrefix(line, []byte("id:")); ok {
			rest = bytes.TrimPrefix(rest, []byte(" "))
			if bytes.IndexByte(rest, 0) < 0 { // the spec ignores ids holding NUL
				s.lastID = string(rest)
			}
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			rest = bytes.TrimPrefix(rest, []byte(" "))
			if len(s.data) > 0 {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, rest...)
			if len(s.data) > s.max {
				return nil, fmt.Errorf("SSE event larger than %d bytes", s.max)
			}
		}
	}
}
