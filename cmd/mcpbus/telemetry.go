package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus/version"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing export. mcpbus makes OpenTelemetry spans for every hop of a call
// (ingress, router, worker, upstream; see the tracing.go of each service) and
// exports them over OTLP/HTTP only when an endpoint is configured the standard
// way:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT         base URL, /v1/traces is appended (http://collector:4318)
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL of the traces endpoint
//
// With neither (or OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none) no SDK
// is installed: spans go to OpenTelemetry's no-op provider and cost next to
// nothing. Everything else is the exporter's and SDK's own standard variables:
// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// _INSECURE; OTEL_TRACES_SAMPLER[_ARG] (default parentbased_always_on, so a
// client's sampling decision holds); OTEL_BSP_*; OTEL_SERVICE_NAME (default
// "mcpbus") and OTEL_RESOURCE_ATTRIBUTES. Spans are batched and flushed when
// the gateway shuts down.

// tracing is the configured export, if any.
type tracing struct {
	// Provider is nil when no exporter is configured.
	Provider *sdktrace.TracerProvider
}

// setupTracing installs the OTLP exporter the environment asks for, as the
// global provider too (for libraries that use it), or does nothing.
func setupTracing(ctx context.Context, log *slog.Logger) (*tracing, error) {
	if !tracingConfigured() {
		return &tracing{}, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := os.Getenv(k); p != "" {
			if p != "http/protobuf" {
				log.Warn("only OTLP over HTTP (http/protobuf) is built in; exporting with it", "env", k, "value", p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("opentelemetry: OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "mcpbus"), attribute.String("service.version", version.Version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: last, so they win
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: keep what could be read.
		log.Warn("opentelemetry resource", "err", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry", "err", err) }))
	return &tracing{Provider: tp}, nil
}

// tracingConfigured reports whether the environment names a traces endpoint and
// does not turn export off.
func tracingConfigured() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// tracerProvider is what the gateway uses: OpenTelemetry's no-op provider
// when no exporter is configured, which the services recognize
// (bus.TracingOff) and then skip their spans altogether.
func (t *tracing) tracerProvider() trace.TracerProvider {
	if t.Provider == nil {
		return noop.NewTracerProvider()
	}
	return t.Provider
}

// flush is Shutdown bounded by 5 s, logging a failure: what a command defers
// once its services have stopped.
func (t *tracing) flush(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("opentelemetry: flushing spans failed", "err", err)
	}
}

// Shutdown flushes the spans not yet exported, bounded by ctx.
func (t *tracing) Shutdown(ctx context.Context) error {
	if t.Provider == nil {
		return nil
	}
	return t.Provider.Shutdown(ctx)
}
