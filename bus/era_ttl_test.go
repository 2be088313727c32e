package bus

import (
	"encoding/json"
	"testing"
	"time"
)

// WithTTL sets ttlMs in whole milliseconds, never below 0, and leaves what
// is not an object alone.
func TestWithTTL(t *testing.T) {
	for _, c := range []struct {
		in   string
		d    time.Duration
		want string
	}{
		{`{"tools":[],"ttlMs":30000}`, 1500 * time.Millisecond, `{"tools":[],"ttlMs":1500}`},
		{`{"tools":[]}`, 2 * time.Second, `{"tools":[],"ttlMs":2000}`},
		{`{"ttlMs":5}`, -time.Second, `{"ttlMs":0}`},
		{`[1]`, time.Second, `[1]`},
	} {
		if got := string(WithTTL(json.RawMessage(c.in), c.d)); got != c.want {
			t.Errorf("WithTTL(%s, %v) = %s, want %s", c.in, c.d, got, c.want)
		}
	}
}
