package upstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// readAllEvents drains a scanner and returns every event's data until io.EOF.
func readAllEvents(t *testing.T, in string, max int) ([]string, error) {
	t.Helper()
	sc := newSSEScanner(strings.NewReader(in), max)
	var out []string
	for i := 0; i < 1000; i++ {
		data, err := sc.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(data))
	}
	t.Fatal("scanner did not reach EOF")
	return nil, nil
}

func TestSSEScannerEvents(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"single event", "data: {\"a\":1}\n\n", []string{`{"a":1}`}},
		{"no space after colon", "data:{\"a\":1}\n\n", []string{`{"a":1}`}},
		{"only one leading space stripped", "data:  x\n\n", []string{" x"}},
		{"multi-line data joined with LF", "data: line1\ndata: line2\ndata: line3\n\n", []string{"line1\nline2\nline3"}},
		{"CRLF line endings", "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", []string{"a\nb", "c"}},
		{"event, id, retry and comments ignored",
			": keep-alive\nevent: message\nid: 42\nretry: 1000\ndata: payload\n\n",
			[]string{"payload"}},
		{"two events", "data: one\n\ndata: two\n\n", []string{"one", "two"}},
		{"leading blank lines skipped", "\n\n\ndata: x\n\n", []string{"x"}},
		{"event at EOF without trailing blank line", "data: first\n\ndata: last", []string{"first", "last"}},
		{"event at EOF with newline but no blank line", "data: last\n", []string{"last"}},
		{"event without data is empty", ": ping\n\ndata: x\n\n", []string{"", "x"}},
		{"empty stream", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readAllEvents(t, c.in, 1<<20)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d events %q, want %d %q", len(got), got, len(c.want), c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestSSEScannerLongLineReadIntact(t *testing.T) {
	// 100 KB is several times the scanner's 16 KiB bufio buffer.
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	for _, tail := range []string{"\n\n", "\r\n\r\n", ""} {
		in := "data: " + string(big) + tail + "data: next\n\n"
		if tail == "" {
			in = "data: " + string(big) // at EOF
		}
		got, err := readAllEvents(t, in, 1<<20)
		if err != nil {
			t.Fatalf("tail %q: %v", tail, err)
		}
		if len(got) == 0 || got[0] != string(big) {
			t.Fatalf("tail %q: long line not read intact (got %d events, first len %d, want %d)", tail, len(got), len(first(got)), len(big))
		}
		if tail != "" && (len(got) != 2 || got[1] != "next") {
			t.Fatalf("tail %q: event after the long line lost: %d events", tail, len(got))
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestSSEScannerLimits(t *testing.T) {
	cases := []struct {
		name string
		in   string
		max  int
	}{
		{"one data line larger than max", "data: " + strings.Repeat("x", 101) + "\n\n", 100},
		{"data lines adding up to more than max", strings.Repeat("data: "+strings.Repeat("x", 30)+"\n", 5) + "\n", 100},
		{"physical line longer than max and the buffer", "data: " + strings.Repeat("x", 64<<10) + "\n\n", 20 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := newSSEScanner(strings.NewReader(c.in), c.max)
			data, err := sc.Next()
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("want a size error, got data len %d err %v", len(data), err)
			}
			if !strings.Contains(err.Error(), "larger than") && !strings.Contains(err.Error(), "longer than") {
				t.Fatalf("error %q does not say the event is too large", err)
			}
		})
	}
	// Exactly max is fine.
	sc := newSSEScanner(strings.NewReader("data: "+strings.Repeat("y", 100)+"\n\n"), 100)
	if data, err := sc.Next(); err != nil || len(data) != 100 {
		t.Fatalf("event of exactly max bytes: len %d err %v", len(data), err)
	}
}

// errReader fails after its content, as a broken connection does.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestSSEScannerPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	sc := newSSEScanner(&errReader{strings.NewReader("data: a\n\ndata: partial"), boom}, 1<<20)
	if d, err := sc.Next(); err != nil || string(d) != "a" {
		t.Fatalf("first event: %q %v", d, err)
	}
	if d, err := sc.Next(); !errors.Is(err, boom) {
		t.Fatalf("want the read error for a half event, got %q %v", d, err)
	}
}
