// Package auth is the auth service: it answers bus.SubjectAuthVerify with the
// caller's identity, or an explicit ErrUnauthorized / ErrRateLimited with the
// reason, and serves the LiteLLM-compatible key, team and organization admin
// endpoints.
//
// Virtual keys, teams and organizations live in JetStream KV (bus.BucketKeys
// under the key's SHA-256, bus.BucketTeams under the team id, bus.BucketOrgs
// under the organization id); every replica keeps an in-memory
// copy fed by KV watches and answers verify from it, so an edit takes effect on
// every replica within milliseconds. The plaintext key is never stored: it is
// shown once, by key.generate.
package auth

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/internal/pool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Options configures the auth service.
type Options struct {
	// MasterKey is the admin key. Empty means the gateway runs open: every caller
	// is the anonymous identity (the serve command allows this on loopback only),
	// whatever key it sends.
	MasterKey string
	Log       *slog.Logger
	// State sets the replicas of the buckets auth creates (bus.StatePolicy).
	State   bus.StatePolicy
	Version string
	// JetStream holds the keys, teams and rate-limit buckets. Nil disables
	// virtual keys: only the master key verifies, and the key and team admin
	// endpoints answer ErrServiceUnavailable.
	JetStream jetstream.JetStream
	// Now is the clock for expiry and rate-limit windows; nil means time.Now.
	Now func() time.Time
	// ExpiryCheck is how often expired keys are looked for, to announce their
	// revocation on bus.SubjectKeyRevoked; zero means 250ms.
	ExpiryCheck time.Duration
	// RateLimitFailOpen lets a rate-limited key's requests through while its
	// counter cannot be reached (general_settings.rate_limit_unavailable:
	// allow); by default they are refused with ErrServiceUnavailable.
	RateLimitFailOpen bool
}

// DefaultExpiryCheck is the default Options.ExpiryCheck.
const DefaultExpiryCheck = 250 * time.Millisecond

// rateLimitWorkers bounds the verify requests waiting on rate-limit counters at
// once; beyond it the subscription itself waits (backpressure).
const rateLimitWorkers = 256

// kvTimeout bounds one admin request's, or one rate-limit check's, KV work.
const kvTimeout = 5 * time.Second

type service struct {
	nc         *nats.Conn
	masterHash []byte // sha256 of the master key; nil when open
	log        *slog.Logger
	now        func() time.Time

	// Virtual keys; nil without JetStream.
	store    *store
	limiter  rateCounter
	failOpen bool // Options.RateLimitFailOpen
	// spendReady: the spend counters' stream exists (llm_limits.go).
	spendReady bool
	// warn rate-limits repeated warnings (a counter outage would otherwise
	// log once per request).
	warn bus.RateLimited
	pool *pool.Pool
	// adminMu serializes this replica's admin writes, so alias checks and the
	// writes they guard do not interleave here (see checkAlias).
	adminMu sync.Mutex
}

// Start registers the auth micro service on nc. With o.JetStream it first opens
// the key, team and rate-limit buckets and loads keys and teams, and it stops
// following them when the service stops.
func Start(nc *nats.Conn, o Options) (micro.Service, error) {
	_, svc, err := start(nc, o)
	return svc, err
}

func start(nc *nats.Conn, o Options) (*service, micro.Service, error) {
	s := &service{nc: nc, log: o.Log, now: o.Now, pool: pool.New(rateLimitWorkers), failOpen: o.RateLimitFailOpen}
	if o.MasterKey != "" {
		s.masterHash = []byte(bus.HashKey(o.MasterKey))
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	if o.JetStream != nil {
		if err := s.openStore(ctx, o); err != nil {
			cancel()
			return nil, nil, err
		}
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceAuth,
		Version:     serviceVersion(o.Version),
		Description: "verifies gateway keys; manages virtual keys, teams and organizations",
		Endpoint: &micro.EndpointConfig{
			Subject: bus.SubjectAuthVerify,
			// Verification is a lookup in memory: cheap enough to answer on the
			// subscription goroutine. Only keys with an rpm_limit go to the pool.
			Handler: micro.HandlerFunc(s.handle),
		},
		DoneHandler: func(micro.Service) { cancel() },
	})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if err := s.addLLMEndpoints(svc); err != nil { // llm_limits.go
		_ = svc.Stop()
		return nil, nil, err
	}
	for _, ep := range []struct {
		name, subject string
		h             adminHandler
	}{
		{"key-generate", bus.SubjectKeyGenerate, s.keyGenerate},
		{"key-info", bus.SubjectKeyInfo, s.keyInfo},
		{"key-list", bus.SubjectKeyList, s.keyList},
		{"key-update", bus.SubjectKeyUpdate, s.keyUpdate},
		{"key-delete", bus.SubjectKeyDelete, s.keyDelete},
		{"team-new", bus.SubjectTeamNew, s.teamNew},
		{"team-info", bus.SubjectTeamInfo, s.teamInfo},
		{"team-list", bus.SubjectTeamList, s.teamList},
		{"team-update", bus.SubjectTeamUpdate, s.teamUpdate},
		{"team-delete", bus.SubjectTeamDelete, s.teamDelete},
		{"org-new", bus.SubjectOrgNew, s.orgNew},
		{"org-info", bus.SubjectOrgInfo, s.orgInfo},
		{"org-list", bus.SubjectOrgList, s.orgList},
		{"org-update", bus.SubjectOrgUpdate, s.orgUpdate},
		{"org-delete", bus.SubjectOrgDelete, s.orgDelete},
		{"org-member-add", bus.SubjectOrgMemberAdd, s.orgMemberAdd},
		{"org-member-delete", bus.SubjectOrgMemberDelete, s.orgMemberDelete},
	} {
		if err := svc.AddEndpoint(ep.name, s.admin(ep.h), micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, nil, fmt.Errorf("auth endpoint %s: %w", ep.name, err)
		}
	}
	return s, svc, nil
}

func (s *service) openStore(ctx context.Context, o Options) error {
	ictx, done := context.WithTimeout(ctx, bus.FormingWait)
	defer done()
	keys, err := keysBucket(ictx, o.JetStream, o.state())
	if err != nil {
		return err
	}
	teams, err := teamsBucket(ictx, o.JetStream, o.state())
	if err != nil {
		return err
	}
	orgs, err := orgsBucket(ictx, o.JetStream, o.state())
	if err != nil {
		return err
	}
	if err := rateCounterStream(ictx, o.JetStream, o.state()); err == nil {
		s.limiter = &counterLimiter{nc: s.nc, now: s.now}
		if err := spendStream(ictx, o.JetStream, o.state()); err != nil {
			s.log.Warn("auth: LLM budgets cannot be counted: no spend stream", "err", err)
		} else {
			s.spendReady = true
		}
	} else {
		// A NATS without distributed counters (before 2.12): compare-and-set
		// on a KV bucket, exact while contention stays under maxCASAttempts.
		s.log.Warn("auth: rpm_limit counted with KV compare-and-set: this NATS has no distributed counters (nats-server 2.12+)", "err", err)
		limits, err := rateLimitsBucket(ictx, o.JetStream, o.state())
		if err != nil {
			return err
		}
		s.limiter = &limiter{kv: limits, now: s.now}
	}
	st := newStore(keys, teams, orgs, s.nc, s.now, s.log)
	// The watches live as long as the service (ctx), not the set-up timeout.
	if err := st.watch(ctx); err != nil {
		return err
	}
	s.store = st
	every := o.ExpiryCheck
	if every <= 0 {
		every = DefaultExpiryCheck
	}
	go st.expireLoop(ctx, every)
	return nil
}

func (s *service) handle(req micro.Request) {
	var in bus.VerifyRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &in); err != nil {
			bus.RespondError(req, bus.Errorf(bus.ErrBadRequest, "auth: malformed verify request"))
			return
		}
	}
	var id bus.Identity
	var limits []rateLimit
	var err *bus.Error
	if in.OAuth != nil {
		id, limits, err = s.checkOAuth(in.OAuth) // oauth_callers.go
	} else {
		id, limits, err = s.check(in.KeyHash)
	}
	if err != nil {
		bus.RespondError(req, err)
		return
	}
	if len(limits) == 0 {
		_ = req.RespondJSON(id)
		return
	}
	// Counting needs KV round trips: do them off the subscription goroutine,
	// answering with bus.Reply (micro.Request must not be used after return).
	reply := bus.NewReply(s.nc, req)
	task := func() {
		if e := s.count(limits); e != nil {
			_ = reply.Error(e)
			return
		}
		body, _ := json.Marshal(id)
		_ = reply.Respond(body)
	}
	if !s.pool.Go(task) {
		task()
	}
}

// verify is check and count together: the whole answer for keyHash.
func (s *service) verify(keyHash string) (bus.Identity, *bus.Error) {
	id, limits, err := s.check(keyHash)
	if err != nil {
		return bus.Identity{}, err
	}
	if e := s.count(limits); e != nil {
		return bus.Identity{}, e
	}
	return id, nil
}

// rateLimit is one rpm_limit a request must pass.
type rateLimit struct {
	scope, id, name string
	limit           int
}

// check answers keyHash from memory: the identity, and the rate limits the
// request must still pass (none for the master key and keys without limits).
func (s *service) check(keyHash string) (bus.Identity, []rateLimit, *bus.Error) {
	if s.masterHash == nil {
		return bus.Identity{KeyID: "anonymous", Permissions: bus.AllowAll()}, nil, nil
	}
	if keyHash == "" {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: no API key; send 'Authorization: Bearer <key>' or 'x-litellm-api-key: Bearer <key>'")
	}
	if _, err := hex.DecodeString(keyHash); err != nil || len(keyHash) != 64 {
		return bus.Identity{}, nil, errInvalidKey()
	}
	if subtle.ConstantTimeCompare([]byte(keyHash), s.masterHash) == 1 {
		return bus.Identity{KeyID: "master", Alias: "master", Admin: true, Permissions: bus.AllowAll()}, nil, nil
	}
	if s.store == nil {
		return bus.Identity{}, nil, errInvalidKey()
	}
	r, ok := s.store.lookup(keyHash)
	if !ok {
		return bus.Identity{}, nil, errInvalidKey()
	}
	key, team, org := r.key, r.team, r.org
	name := keyName(key)
	if key.Blocked {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized, "unauthorized: key '%s' is blocked", name)
	}
	if key.Expires != nil && !s.now().Before(*key.Expires) {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized, "unauthorized: key '%s' expired at %s",
			name, key.Expires.UTC().Format(time.RFC3339))
	}
	if r.teamGone {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: key '%s' belongs to team '%s', which no longer exists", name, key.TeamID)
	}
	if team != nil && team.Blocked {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: key '%s' belongs to team '%s', which is blocked", name, teamName(*team))
	}
	if r.orgGone {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: key '%s' belongs to team '%s' of organization '%s', which no longer exists", name, teamName(*team), team.OrganizationID)
	}
	if org != nil && org.Blocked {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: key '%s' belongs to team '%s' of organization '%s', which is blocked", name, teamName(*team), orgName(*org))
	}
	var limits []rateLimit
	if key.RPMLimit > 0 {
		limits = append(limits, rateLimit{"key", key.Token, name, key.RPMLimit})
	}
	if team != nil && team.RPMLimit > 0 {
		limits = append(limits, rateLimit{"team", team.TeamID, teamName(*team), team.RPMLimit})
	}
	var orgID string
	if org != nil {
		orgID = org.OrganizationID
		if org.RPMLimit > 0 {
			limits = append(limits, rateLimit{"org", orgID, orgName(*org), org.RPMLimit})
		}
	}
	return bus.Identity{
		KeyID:       key.Token,
		Alias:       key.KeyAlias,
		Team:        key.TeamID,
		Org:         orgID,
		User:        key.UserID,
		OrgAdmin:    r.orgAdmin(),
		Permissions: Effective(key, team, org),
		RateLimited: len(limits) > 0,
		Expires:     key.Expires,
		ToolSearch:  toolSearch(key, team),
	}, limits, nil
}

// count passes a request through its rate limits (see limiter).
func (s *service) count(limits []rateLimit) *bus.Error {
	if len(limits) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	for _, l := range limits {
		refused, err := s.limiter.allow(ctx, l.scope, l.id, l.name, l.limit)
		if err != nil && s.failOpen {
			s.warn.Warn(s.log, "auth: rate limit not enforced: its counter is unavailable (rate_limit_unavailable: allow)", "scope", l.scope, "err", err)
			continue
		}
		if err != nil {
			s.warn.Warn(s.log, "auth: requests of rate-limited keys refused: their counter is unavailable", "scope", l.scope, "err", err)
			return bus.Errorf(bus.ErrServiceUnavailable, "the rate limit of %s '%s' cannot be checked now, so the request is refused; try again shortly", l.scope, l.name)
		}
		if refused != nil {
			return refused
		}
	}
	return nil
}

func errInvalidKey() *bus.Error {
	return bus.Errorf(bus.ErrUnauthorized, "unauthorized: invalid API key")
}

// keyName is how messages name a key: its alias, else its token's first 8 hex
// digits (never the key itself).
func keyName(k bus.KeyRecord) string {
	if k.KeyAlias != "" {
		return k.KeyAlias
	}
	return prefix(k.Token)
}

func teamName(t bus.TeamRecord) string {
	if t.TeamAlias != "" {
		return t.TeamAlias
	}
	return t.TeamID
}

func orgName(o bus.OrgRecord) string {
	if o.OrganizationAlias != "" {
		return o.OrganizationAlias
	}
	return o.OrganizationID
}

func serviceVersion(v string) string {
	if v == "" {
		return version.Version
	}
	return v
}

// state is the bucket policy, logging to the service's logger.
func (o Options) state() bus.StatePolicy {
	p := o.State
	if p.Log == nil {
		p.Log = o.Log
	}
	return p
}

// rateCounter counts requests against rpm limits: counterLimiter, or the
// KV limiter on a NATS without distributed counters.
type rateCounter interface {
	allow(ctx context.Context, scope, id, name string, limit int) (*bus.Error, error)
}
