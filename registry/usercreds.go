package registry

import (
	"bytes"
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

// The user credential API (bus/usercreds.go): a caller stores, lists and
// revokes its own upstream credentials for the servers with is_byok; the
// master key lists and revokes anyone's. The registry answers it because it
// holds the key that seals them and the server records that say who may use
// which server. Every request carries the caller's envelope, which is read
// and checked here again (bus.ReadEnvelope): the ingress is not the last
// word on who may store a credential for a server.

// addUserCredEndpoints registers the three endpoints on svc.
func (reg *Registry) addUserCredEndpoints(svc micro.Service) error {
	for _, ep := range []struct {
		name, subject string
		handle        func(context.Context, bus.Envelope, []byte) (any, *bus.Error)
	}{
		{"usercred_put", bus.SubjectUserCredPut, reg.userCredPut},
		{"usercred_list", bus.SubjectUserCredList, reg.userCredList},
		{"usercred_delete", bus.SubjectUserCredDelete, reg.userCredDelete},
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
			if env.Caller.KeyID == "" {
				bus.RespondError(req, bus.Errorf(bus.ErrUnauthorized, "user credentials: the request names no caller"))
				return
			}
			if reg.o.UserCredsKV == nil {
				bus.RespondError(req, bus.Errorf(bus.ErrServiceUnavailable, "user credentials: the registry has no credential store (JetStream)"))
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), reg.o.Timeout)
			defer cancel()
			out, e := ep.handle(ctx, env, req.Data())
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

// decodeStrict reads a body of v's fields only.
func decodeStrict(data []byte, v any) *bus.Error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return bus.Errorf(bus.ErrBadRequest, "user credentials: malformed request on the bus")
	}
	return nil
}

func (reg *Registry) userCredPut(ctx context.Context, env bus.Envelope, data []byte) (any, *bus.Error) {
	var in bus.UserCredentialPut
	if e := decodeStrict(data, &in); e != nil {
		return nil, e
	}
	if e := in.Validate(); e != nil {
		return nil, e
	}
	now := time.Now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, bus.Errorf(bus.ErrBadRequest, "expires_at: is in the past")
	}
	if e := reg.mayStore(env, in.Server); e != nil {
		return nil, e
	}
	c := bus.UserCredential{User: env.Caller.UserKey(), Server: in.Server, Kind: bus.CredentialBYOK,
		AccessToken: in.Credential, ObtainedAt: now.UTC(), ExpiresAt: in.ExpiresAt}
	sealed, err := reg.o.Secrets.SealUserCredential(c)
	if err != nil {
		reg.log.Error("user credential refused: no secret key", "server", in.Server)
		return nil, bus.Errorf(bus.ErrServiceUnavailable, "user credentials: %v", err)
	}
	value, _ := json.Marshal(sealed)
	key := bus.UserCredentialKey(c.User, c.Server)
	rev, err := reg.o.UserCredsKV.Put(ctx, key, value)
	if err != nil {
		return nil, reg.storeError("store user credential", in.Server, err)
	}
	reg.log.Info("user credential stored", "server", in.Server, "user", bus.UserIDOfKey(c.User), "request_id", env.RequestID)
	return c.Info(rev, now), nil
}

// mayStore checks that the caller may store a credential for server: it
// exists and the caller sees it (else it is unknown, as everywhere), the
// caller's key may use it, and it takes per-user credentials.
func (reg *Registry) mayStore(env bus.Envelope, server string) *bus.Error {
	s, ok := reg.cache.Get(server)
	if !ok || !bus.Visible(s, env.IPClass) {
		return bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", server)
	}
	if !env.Caller.Permissions.AllowsServer(s) {
		return bus.Errorf(bus.ErrNotPermitted, "%s may not use MCP server '%s', so it cannot store a credential for it", env.Caller.Who(), server)
	}
	if !s.BYOK {
		return bus.Errorf(bus.ErrBadRequest, "MCP server '%s' does not take per-user credentials (it is not is_byok): the gateway holds its credential", server)
	}
	return nil
}

// target is whose credentials a request is about: the caller's, or the
// user ref names, which only the master key may name.
func target(env bus.Envelope, ref bus.UserCredentialRef, verb string) (string, *bus.Error) {
	if ref.UserID == "" && !ref.AllUsers {
		return env.Caller.UserKey(), nil
	}
	if !env.Caller.Admin {
		return "", bus.Errorf(bus.ErrForbidden, "only the master key may %s another user's credentials (leave out user_id for your own)", verb)
	}
	return "user:" + ref.UserID, nil
}

func (reg *Registry) userCredDelete(ctx context.Context, env bus.Envelope, data []byte) (any, *bus.Error) {
	var ref bus.UserCredentialRef
	if e := decodeStrict(data, &ref); e != nil {
		return nil, e
	}
	if e := ref.Validate(); e != nil {
		return nil, e
	}
	if ref.Server == "" || ref.AllUsers {
		return nil, bus.Errorf(bus.ErrBadRequest, "server_id: required: the server whose credential to revoke")
	}
	who, e := target(env, ref, "revoke")
	if e != nil {
		return nil, e
	}
	key := bus.UserCredentialKey(who, ref.Server)
	entry, err := reg.o.UserCredsKV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, noCredential(ref)
	} else if err != nil {
		return nil, reg.storeError("read user credential", ref.Server, err)
	}
	c, err := bus.DecodeUserCredential(key, entry.Value())
	if err != nil {
		reg.log.Error("user credential record refused; revoking it all the same", "server", ref.Server, "err", err)
		c = bus.UserCredential{User: who, Server: ref.Server, Kind: bus.CredentialBYOK}
	}
	// Purge: the sealed value goes with its history, and every worker
	// replica of the server hears of it on the key's subject.
	if err := reg.o.UserCredsKV.Purge(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
		return nil, reg.storeError("revoke user credential", ref.Server, err)
	}
	reg.log.Info("user credential revoked", "server", ref.Server, "user", bus.UserIDOfKey(who), "by", env.Caller.Name(), "request_id", env.RequestID)
	return c.Info(entry.Revision(), time.Now()), nil
}

func noCredential(ref bus.UserCredentialRef) *bus.Error {
	if ref.UserID != "" {
		return bus.Errorf(bus.ErrNotFound, "user '%s' has no credential stored for MCP server '%s'", ref.UserID, ref.Server)
	}
	return bus.Errorf(bus.ErrNotFound, "you have no credential stored for MCP server '%s'", ref.Server)
}

func (reg *Registry) userCredList(ctx context.Context, env bus.Envelope, data []byte) (any, *bus.Error) {
	var ref bus.UserCredentialRef
	if e := decodeStrict(data, &ref); e != nil {
		return nil, e
	}
	if e := ref.Validate(); e != nil {
		return nil, e
	}
	who, e := target(env, ref, "list")
	if e != nil {
		return nil, e
	}
	filter := bus.UserCredentialOwnerPrefix(who) + "*"
	switch {
	case ref.AllUsers:
		filter = "*." + ref.Server
	case ref.Server != "":
		filter = bus.UserCredentialKey(who, ref.Server)
	}
	lister, err := reg.o.UserCredsKV.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, reg.storeError("list user credentials", ref.Server, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	slices.Sort(keys)
	keys = slices.Compact(keys) // a key written during the listing comes twice
	now := time.Now()
	out := bus.UserCredentialList{Credentials: []bus.UserCredentialInfo{}}
	for _, k := range keys {
		entry, err := reg.o.UserCredsKV.Get(ctx, k)
		if err != nil {
			continue // revoked meanwhile
		}
		c, err := bus.DecodeUserCredential(k, entry.Value())
		if err != nil {
			reg.log.Error("user credential record refused", "key", k, "err", err)
			continue
		}
		out.Credentials = append(out.Credentials, c.Info(entry.Revision(), now))
	}
	slices.SortFunc(out.Credentials, func(a, b bus.UserCredentialInfo) int {
		return cmpStrings(a.Server+"\x00"+a.UserID, b.Server+"\x00"+b.UserID)
	})
	return out, nil
}

func cmpStrings(a, b string) int { return strings.Compare(a, b) }
