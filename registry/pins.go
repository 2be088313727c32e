package registry

// The pin API (bus/pins.go, docs/PINNING.md): a server's pinned tool
// definitions, one pin with what a pending change changes and its history,
// and the approval of a pending change. Master key only (the ingress relays
// nothing else); approvals are announced on bus.PinEventSubject (the audit stream).

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

func (reg *Registry) addPinEndpoints(svc micro.Service) error {
	for _, ep := range []struct {
		name, subject string
		handle        func(context.Context, bus.Envelope, bus.PinRef, bus.ServerSpec) (any, *bus.Error)
	}{
		{"pins_list", bus.SubjectRegistryPinsList, reg.pinsList},
		{"pins_get", bus.SubjectRegistryPinsGet, reg.pinsGet},
		{"pins_approve", bus.SubjectRegistryPinsApprove, reg.pinsApprove},
		{"pins_reject", bus.SubjectRegistryPinsReject, reg.pinsReject},
	} {
		err := svc.AddEndpoint(ep.name, micro.HandlerFunc(func(req micro.Request) {
			if req.Reply() == "" {
				return // not a request (service.go says why)
			}
			env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
			if err != nil {
				bus.RespondError(req, bus.AsError(err))
				return
			}
			var in bus.PinRef
			if json.Unmarshal(req.Data(), &in) != nil {
				bus.RespondError(req, bus.Errorf(bus.ErrBadRequest, `tool pins: the body must be {"server": "<name>", "tool": "<tool>"} (tool only for one pin)`))
				return
			}
			if e := in.Validate(ep.name != "pins_list"); e != nil {
				bus.RespondError(req, e)
				return
			}
			spec, ok := reg.cache.Get(in.Server)
			if !ok {
				bus.RespondError(req, notFound(in.Server))
				return
			}
			if reg.o.PinsKV == nil {
				bus.RespondError(req, bus.Errorf(bus.ErrServiceUnavailable, "tool pins: the registry has no pin store (JetStream)"))
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), reg.o.Timeout)
			defer cancel()
			out, e := ep.handle(ctx, env, in, spec)
			if e != nil {
				bus.RespondError(req, e)
				return
			}
			_ = req.RespondJSON(out)
		}), micro.WithEndpointSubject(ep.subject))
		if err != nil {
			return err
		}
	}
	return nil
}

func (reg *Registry) pinsList(ctx context.Context, _ bus.Envelope, in bus.PinRef, spec bus.ServerSpec) (any, *bus.Error) {
	out := bus.PinList{Server: in.Server, ToolPinning: bus.EffectivePinning(spec.ToolPinning, reg.o.ToolPinning), Pins: []bus.PinSummary{}}
	w, err := reg.o.PinsKV.WatchFiltered(ctx, []string{bus.PinKeys(in.Server)}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, reg.pinStoreError("list", in.Server, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, reg.pinStoreError("list", in.Server, ctx.Err())
		case e := <-w.Updates():
			if e == nil { // the current values are all delivered
				slices.SortFunc(out.Pins, func(a, b bus.PinSummary) int { return strings.Compare(a.Tool, b.Tool) })
				return out, nil
			}
			var p bus.ToolPin
			if json.Unmarshal(e.Value(), &p) != nil {
				continue
			}
			out.Pins = append(out.Pins, bus.PinSummary{Tool: p.Tool, Status: p.Status, Hash: p.Hash, PendingHash: p.PendingHash,
				PinnedAt: p.PinnedAt, ApprovedBy: p.ApprovedBy})
		}
	}
}

// readPin returns a tool's pin and its revision.
func (reg *Registry) readPin(ctx context.Context, in bus.PinRef) (bus.ToolPin, uint64, *bus.Error) {
	key := bus.PinKey(in.Server, in.Tool)
	if key == "" {
		return bus.ToolPin{}, 0, bus.Errorf(bus.ErrBadRequest, "tool pins: %q is not a server name", in.Server)
	}
	e, err := reg.o.PinsKV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bus.ToolPin{}, 0, bus.Errorf(bus.ErrNotFound, "tool '%s' of MCP server '%s' has no pin (tool_pinning pins a tool when a worker first lists it)",
			bus.Shorten(in.Tool, 64), in.Server)
	}
	if err != nil {
		return bus.ToolPin{}, 0, reg.pinStoreError("read", in.Server, err)
	}
	var p bus.ToolPin
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return bus.ToolPin{}, 0, reg.pinStoreError("read", in.Server, err)
	}
	return p, e.Revision(), nil
}

func (reg *Registry) pinsGet(ctx context.Context, _ bus.Envelope, in bus.PinRef, _ bus.ServerSpec) (any, *bus.Error) {
	p, _, e := reg.readPin(ctx, in)
	if e != nil {
		return nil, e
	}
	out := bus.PinDetail{ToolPin: p, History: []bus.PinRevision{}}
	if p.Status == bus.PinPending {
		out.Diff = bus.DiffDefinitions(p.Definition, p.PendingDefinition)
	}
	hist, err := reg.o.PinsKV.History(ctx, bus.PinKey(in.Server, in.Tool))
	if err != nil {
		return nil, reg.pinStoreError("read the history of", in.Server, err)
	}
	for _, h := range hist {
		var hp bus.ToolPin
		if h.Operation() != jetstream.KeyValuePut || json.Unmarshal(h.Value(), &hp) != nil {
			continue
		}
		out.History = append(out.History, bus.PinRevision{Revision: h.Revision(), At: h.Created().UTC(), Status: hp.Status,
			Hash: hp.Hash, PendingHash: hp.PendingHash, ApprovedBy: hp.ApprovedBy})
	}
	return out, nil
}

func (reg *Registry) pinsApprove(ctx context.Context, env bus.Envelope, in bus.PinRef, _ bus.ServerSpec) (any, *bus.Error) {
	return reg.decide(ctx, env, in, true)
}

func (reg *Registry) pinsReject(ctx context.Context, env bus.Envelope, in bus.PinRef, _ bus.ServerSpec) (any, *bus.Error) {
	return reg.decide(ctx, env, in, false)
}

// decide approves a pending change (the pending definition becomes the
// pinned one) or rejects it (the pinned one stays), on the revision read,
// and announces it.
func (reg *Registry) decide(ctx context.Context, env bus.Envelope, in bus.PinRef, approve bool) (any, *bus.Error) {
	p, rev, e := reg.readPin(ctx, in)
	if e != nil {
		return nil, e
	}
	if p.Status != bus.PinPending {
		return nil, bus.Errorf(bus.ErrConflict, "tool '%s' of MCP server '%s' has no change waiting for approval (status %s)", bus.Shorten(in.Tool, 64), in.Server, p.Status)
	}
	if in.Hash != "" && in.Hash != p.PendingHash {
		return nil, bus.Errorf(bus.ErrConflict, "tool '%s' of MCP server '%s' changed again: its pending hash is %s, not %s; review it again", bus.Shorten(in.Tool, 64), in.Server, p.PendingHash, in.Hash)
	}
	ev := bus.PinEvent{Event: bus.PinEventRejected, Server: in.Server, Tool: in.Tool, Hash: p.Hash, PreviousHash: p.PendingHash, By: env.Caller.Who(), At: time.Now().UTC()}
	if approve {
		ev.Event, ev.Hash, ev.PreviousHash = bus.PinEventApproved, p.PendingHash, p.Hash
		p.Hash, p.Definition = p.PendingHash, p.PendingDefinition
		p.PinnedAt, p.ApprovedBy = ev.At, ev.By
	}
	p.Status, p.PendingHash, p.PendingDefinition, p.PendingSince = bus.PinPinned, "", nil, time.Time{}
	v, err := json.Marshal(p)
	if err != nil {
		return nil, reg.pinStoreError(ev.Event, in.Server, err)
	}
	if _, err := reg.o.PinsKV.Update(ctx, bus.PinKey(in.Server, in.Tool), v, rev); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, bus.Errorf(bus.ErrConflict, "tool '%s' of MCP server '%s': its pin changed meanwhile; review it again", bus.Shorten(in.Tool, 64), in.Server)
		}
		return nil, reg.pinStoreError(ev.Event, in.Server, err)
	}
	if reg.nc != nil {
		data, _ := json.Marshal(ev)
		if err := reg.nc.Publish(bus.PinEventSubject(in.Server), data); err != nil {
			reg.log.Warn("registry: pin event not published", "server", in.Server, "err", err)
		}
	}
	reg.log.Info("registry: tool pin "+ev.Event, "server", in.Server, "tool", in.Tool, "hash", p.Hash, "by", ev.By)
	return p, nil
}

// pinStoreError turns a KV failure into a gateway error; the detail is logged.
func (reg *Registry) pinStoreError(op, server string, err error) *bus.Error {
	reg.log.Error("registry: tool pin store failed", "op", op, "server", server, "err", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return bus.Errorf(bus.ErrServiceUnavailable, "registry: the tool pin store did not answer in time")
	}
	return bus.Errorf(bus.ErrInternal, "registry: could not %s the tool pins of server '%s'", op, server)
}
