package upstream

import (
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// InjectTrace sets the upstream HTTP request's traceparent (and tracestate)
// from its context's span, replacing one already set in any case (a
// static_headers name need not be canonical); a context without a span context
// leaves the headers alone.
func InjectTrace(req *http.Request) {
	bus.TraceContext.Inject(req.Context(), upstreamCarrier(req.Header))
}

// upstreamCarrier sets a header under its canonical name, removing it first in
// any other case.
type upstreamCarrier http.Header

func (c upstreamCarrier) Get(key string) string { return bus.HeaderCarrier(c).Get(key) }
func (c upstreamCarrier) Keys() []string        { return bus.HeaderCarrier(c).Keys() }
func (c upstreamCarrier) Set(key, value string) {
	bus.HeaderCarrier(c).Set(http.CanonicalHeaderKey(key), value)
}
