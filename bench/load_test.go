package main

import (
	"testing"
	"time"
)

func TestFindResponse(t *testing.T) {
	json := `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"m7"}]}}`
	sse := "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: " + json + "\n\n"
	for name, body := range map[string]string{"json": json, "sse": sse} {
		r, err := findResponse([]byte(body), "7")
		if err != nil || r.Result == nil || r.Result.Content[0].Text != "m7" {
			t.Errorf("%s: %+v %v", name, r, err)
		}
		if _, err := findResponse([]byte(body), "8"); err == nil {
			t.Errorf("%s: id 8 found in a response to 7", name)
		}
	}
}

func TestPercentileAndMedian(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	if p := percentile(s, 0.50); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(s, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}
