package bus

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// HeaderCarrier carries trace context (W3C traceparent/tracestate) in NATS
// headers. NATS keeps header case as sent, and peers differ ("traceparent" vs
// "Traceparent"), so Get matches names case-insensitively. It satisfies
// go.opentelemetry.io/otel/propagation.TextMapCarrier.
type HeaderCarrier nats.Header

// Get returns the first value of key, whatever its case.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces any value of key, whatever its case.
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
