package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrierIsCaseInsensitive(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	// A peer that capitalised the header name, as HTTP-minded clients do.
	h := nats.Header{"Traceparent": {tp}}
	ctx := propagation.TraceContext{}.Extract(context.Background(), HeaderCarrier(h))
	sc := trace.SpanContextFromContext(ctx)
	if got := sc.TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("trace id = %q, want it read from a capitalised header", got)
	}
	out := nats.Header{"TRACEPARENT": {"stale"}}
	propagation.TraceContext{}.Inject(ctx, HeaderCarrier(out))
	if len(out) != 1 || HeaderCarrier(out).Get("traceparent") != tp {
		t.Fatalf("inject left %v, want one traceparent = %s", out, tp)
	}
}
