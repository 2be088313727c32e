package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go/jetstream"
)

// SourceAPI marks records made through the registry API.
const SourceAPI = "api"

func sortStored(l []stored) {
	sort.Slice(l, func(i, j int) bool { return l[i].spec.Name < l[j].spec.Name })
}

func (reg *Registry) needStore() *bus.Error {
	if reg.o.KV == nil {
		return bus.Errorf(bus.ErrServiceUnavailable, "registry: no server store (JetStream) to write to")
	}
	return nil
}

// create stores a new server made through the API (source "api").
func (reg *Registry) create(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needStore(); e != nil {
		return nil, e
	}
	b, e := parseWriteBody(data)
	if e != nil {
		return nil, e
	}
	if b.revision != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "revision: only an update (PUT) takes a revision")
	}
	spec := bus.ServerSpec{Name: b.name}
	spec, e = reg.check(ctx, b, spec, nil)
	if e != nil {
		return nil, e
	}
	spec.Source = SourceAPI
	value, e := reg.seal(spec)
	if e != nil {
		return nil, e
	}
	rev, err := reg.o.KV.Create(ctx, spec.Name, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, bus.Errorf(bus.ErrConflict, "MCP server '%s' already exists: change it with PUT /v1/mcp/server", spec.Name)
	} else if err != nil {
		return nil, reg.storeError("create", spec.Name, err)
	}
	reg.settle(spec.Name, value)
	reg.log.Info("registry: server created", "server", spec.Name, "transport", spec.Transport, "revision", rev)
	return bus.NewServerRecord(spec, rev), nil
}

// update changes the fields the body sends. With a revision the stored record
// must be at that revision (else ErrConflict naming both). Without one, the
// update applies to the record it read, written only if that is still the
// latest (kv.Update), retried once on a race, so a concurrent write is never
// lost without an error.
func (reg *Registry) update(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needStore(); e != nil {
		return nil, e
	}
	b, e := parseWriteBody(data)
	if e != nil {
		return nil, e
	}
	return reg.modify(ctx, b.name, b.revision, func(bus.ServerSpec) (*writeBody, *bus.Error) { return b, nil })
}

// modify reads the record of name, applies the body edit makes from it and
// writes the result (the rules of update: checked as a write, at revision if
// given, else compare-and-set retried once).
func (reg *Registry) modify(ctx context.Context, name string, revision *uint64, edit func(cur bus.ServerSpec) (*writeBody, *bus.Error)) (any, *bus.Error) {
	for attempt := 0; attempt < 2; attempt++ {
		cur, rev, e := reg.read(ctx, name)
		if e != nil {
			return nil, e
		}
		if revision != nil && *revision != rev {
			return nil, stale(name, rev, *revision)
		}
		b, e := edit(cur)
		if e != nil {
			return nil, e
		}
		spec, e := reg.check(ctx, b, cur, &cur)
		if e != nil {
			return nil, e
		}
		// The record keeps its source: a config-file server edited here is
		// still the file's, and the next start re-applies the file.
		spec.Source = cur.Source
		value, e := reg.seal(spec)
		if e != nil {
			return nil, e
		}
		old, _ := reg.seal(cur)
		if bytes.Equal(value, old) {
			return bus.NewServerRecord(spec, rev), nil // nothing changed
		}
		newRev, err := reg.o.KV.Update(ctx, name, value, rev)
		if isConflict(err) {
			if revision != nil {
				_, now, e := reg.read(ctx, name)
				if e != nil {
					return nil, e
				}
				return nil, stale(name, now, *revision)
			}
			continue
		} else if err != nil {
			return nil, reg.storeError("update", name, err)
		}
		reg.settle(name, value)
		reg.log.Info("registry: server updated", "server", name, "source", spec.Source, "revision", newRev)
		return bus.NewServerRecord(spec, newRev), nil
	}
	return nil, bus.Errorf(bus.ErrConflict, "MCP server '%s' was changed by another request at the same time; retry", name)
}

// delete removes a server, config-file ones included (the next start seeds
// those again).
func (reg *Registry) delete(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needStore(); e != nil {
		return nil, e
	}
	var in bus.ServerRef
	if err := json.Unmarshal(data, &in); err != nil || in.Name == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, `registry delete: body must be {"name": "<server>"}`)
	}
	for attempt := 0; attempt < 2; attempt++ {
		cur, rev, e := reg.read(ctx, in.Name)
		if e != nil {
			return nil, e
		}
		if in.Revision != nil && *in.Revision != rev {
			return nil, stale(in.Name, rev, *in.Revision)
		}
		err := reg.o.KV.Delete(ctx, in.Name, jetstream.LastRevision(rev))
		if isConflict(err) {
			if in.Revision != nil {
				_, now, e := reg.read(ctx, in.Name)
				if e != nil {
					return nil, e
				}
				return nil, stale(in.Name, now, *in.Revision)
			}
			continue
		} else if err != nil {
			return nil, reg.storeError("delete", in.Name, err)
		}
		reg.settle(in.Name, nil)
		reg.log.Info("registry: server deleted", "server", in.Name, "source", cur.Source)
		return bus.DeleteServerReply{ServerID: in.Name, Deleted: true}, nil
	}
	return nil, bus.Errorf(bus.ErrConflict, "MCP server '%s' was changed by another request at the same time; retry", in.Name)
}

func stale(name string, current, sent uint64) *bus.Error {
	return bus.Errorf(bus.ErrConflict, "server '%s' was changed by someone else (revision %d, you sent %d)", name, current, sent)
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// check applies the body to spec (the stored record on update, cur) and
// checks the result as the config file's servers are checked: field types,
// redaction markers, the stdio rule, config.Provision with this process's
// environment, and the tool prefix.
func (reg *Registry) check(ctx context.Context, b *writeBody, spec bus.ServerSpec, cur *bus.ServerSpec) (bus.ServerSpec, *bus.Error) {
	spec = clone(spec)
	ignored, errs := b.apply(&spec, reg.o.Env)
	if len(errs) > 0 {
		return spec, fieldErrors(errs)
	}
	if len(ignored) > 0 {
		reg.log.Debug("registry: ignoring fields mcpbus does not use", "server", spec.Name, "fields", strings.Join(ignored, ","))
	}
	normalise(&spec)
	if errs := keepRedacted(&spec, cur); len(errs) > 0 {
		return spec, fieldErrors(errs)
	}
	if e := reg.stdioAllowed(spec, cur); e != nil {
		return spec, e
	}
	if _, err := config.Provision(spec, reg.o.Env); err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return spec, fieldErrors(errs)
		}
		return spec, bus.Errorf(bus.ErrBadRequest, "%v", err)
	}
	all, e := reg.readAll(ctx)
	if e != nil {
		return spec, e
	}
	for _, o := range all {
		if o.spec.Name != spec.Name && o.spec.Prefix() == spec.Prefix() {
			path := "mcp_servers." + spec.Name
			if spec.Alias != "" {
				path += ".alias"
			}
			return spec, bus.Errorf(bus.ErrBadRequest, "%s: tool prefix (alias, else name) is already used by server %s", path, o.spec.Name)
		}
	}
	return spec, nil
}

// stdioAllowed is the one rule for stdio: such a server runs a command on the
// gateway's host, so unless mcp_allow_stdio_servers_from_api is on, the API
// may not define one. An update of a config-file stdio server that runs only
// what the record already names (command and args, or its canary's, with the
// same env) is allowed: promoting or aborting a canary the file wrote.
func (reg *Registry) stdioAllowed(spec bus.ServerSpec, cur *bus.ServerSpec) *bus.Error {
	if spec.Transport != "stdio" || reg.o.AllowStdioFromAPI {
		return nil
	}
	if cur != nil && cur.Source == "config" && cur.Transport == "stdio" && mapsEqual(cur.Env, spec.Env) &&
		namesRun(*cur, spec.Command, spec.Args) && (spec.CanaryCommand == "" || namesRun(*cur, spec.CanaryCommand, spec.CanaryArgs)) {
		return nil
	}
	return bus.Errorf(bus.ErrForbidden, "mcp_servers.%s: a stdio server runs a command on the gateway host; "+
		"defining one through the API requires general_settings.mcp_allow_stdio_servers_from_api: true (or put it in the config file)", spec.Name)
}

// namesRun reports whether s runs command with args, as its own or as its canary.
func namesRun(s bus.ServerSpec, command string, args []string) bool {
	return (s.Command == command && slices.Equal(s.Args, args)) ||
		(s.CanaryCommand != "" && s.CanaryCommand == command && slices.Equal(s.CanaryArgs, args))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// fieldErrors is one ErrBadRequest listing every field error, "; "-separated,
// each as the config file reports it (mcp_servers.<name>.<field>: ...).
func fieldErrors(errs config.Errors) *bus.Error {
	lines := make([]string, len(errs))
	for i, fe := range errs {
		lines[i] = fe.Error()
	}
	return bus.Errorf(bus.ErrBadRequest, "%s", strings.Join(lines, "; "))
}

// clone copies spec's maps and slices, so edits never reach the record read.
func clone(s bus.ServerSpec) bus.ServerSpec {
	s.StaticHeaders = cloneMap(s.StaticHeaders)
	s.Env = cloneMap(s.Env)
	s.ExtraHeaders = slices.Clone(s.ExtraHeaders)
	s.AllowedTools = slices.Clone(s.AllowedTools)
	s.DisallowedTools = slices.Clone(s.DisallowedTools)
	s.AccessGroups = slices.Clone(s.AccessGroups)
	s.Args = slices.Clone(s.Args)
	s.CanaryArgs = slices.Clone(s.CanaryArgs)
	s.Scopes = slices.Clone(s.Scopes)
	return s
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// settle waits (bounded by SettleTimeout) until the cache shows the write:
// value for a put, absent for a delete (value nil). Services sharing the
// cache (router, ingress in one process) then see it too.
// seal encodes spec as stored: its literal credentials sealed. Without a key
// a literal credential is refused with the fields named.
func (reg *Registry) seal(spec bus.ServerSpec) ([]byte, *bus.Error) {
	sealed, err := reg.o.Secrets.Seal(spec)
	if err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "%v", err)
	}
	value, _ := json.Marshal(sealed)
	return value, nil
}

func (reg *Registry) settle(name string, value []byte) {
	if reg.cache == nil {
		return
	}
	deadline := time.Now().Add(reg.o.SettleTimeout)
	for {
		s, ok := reg.cache.Get(name)
		if value == nil && !ok {
			return
		}
		if value != nil && ok {
			if b, _ := json.Marshal(s); bytes.Equal(b, value) {
				return
			}
		}
		if time.Now().After(deadline) {
			reg.log.Warn("registry: the cache did not show a write in time", "server", name)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
