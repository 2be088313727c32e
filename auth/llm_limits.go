package auth

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// The LLM limits (bus/llm_limits.go), enforced where the key, team and
// organization records are. Tokens are counted per wall-clock minute with
// the rpm counters (StreamRateCounters, scopes "tpm-key", "tpm-team",
// "tpm-org", "tpm-km" for a key and model, "rpm-km"); spend in nano-dollars
// per budget period in StreamSpend (scopes "key", "team", "org",
// "key-model"; a team's and an organization's spend is counted whether or
// not it has a budget, so /organization/info can show it). A budget period is the
// budget_duration counted from the Unix epoch ("30d": periods of 30 days),
// or the key's whole life without one. Admission reads the counters (a
// model_rpm_limit also counts the request); an answer's spend is added
// after it. So a request admitted just under a limit may go over it by what
// it spends, as in LiteLLM.

// spendStream creates the spend counters' stream: on file, each subject's
// last total kept.
func spendStream(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) error {
	_, err := bus.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              bus.StreamSpend,
		Description:       "mcpbus LLM spend counters (nano-dollars per key, team or key and model, per budget period)",
		Subjects:          []string{bus.SubjectSpendAll},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		AllowMsgCounter:   true,
	}, p)
	if err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamSpend, err)
	}
	return nil
}

// addLLMEndpoints serves admission and spend on svc.
func (s *service) addLLMEndpoints(svc micro.Service) error {
	for name, ep := range map[string]struct {
		subject string
		h       func(context.Context, bus.Envelope, []byte) *bus.Error
	}{"llm-admit": {bus.SubjectLLMAdmit, s.llmAdmit}, "llm-spend": {bus.SubjectLLMSpend, s.llmSpend}} {
		h := ep.h
		err := svc.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
			env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
			if err != nil {
				bus.RespondError(req, bus.AsError(err))
				return
			}
			reply, body := bus.NewReply(s.nc, req), req.Data()
			task := func() {
				ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
				defer cancel()
				if e := h(ctx, env, body); e != nil {
					_ = reply.Error(e)
					return
				}
				_ = reply.Respond(nil)
			}
			if !s.pool.Go(task) {
				task()
			}
		}), micro.WithEndpointSubject(ep.subject))
		if err != nil {
			return fmt.Errorf("auth endpoint %s: %w", name, err)
		}
	}
	return nil
}

// llmLimited is the caller's key, team and organization, when the key has
// any.
func (s *service) llmLimited(env bus.Envelope) (records, bool) {
	if s.store == nil {
		return records{}, false
	}
	return s.store.lookup(env.Caller.KeyID)
}

// llmAdmit admits a request for a model, or refuses it naming the limit.
func (s *service) llmAdmit(ctx context.Context, env bus.Envelope, body []byte) *bus.Error {
	var in bus.LLMAdmitRequest
	if e := decode(body, &in); e != nil {
		return e
	}
	r, ok := s.llmLimited(env)
	if !ok {
		return nil // the master key, open mode: no limits
	}
	key, team, org := r.key, r.team, r.org
	if !hasLLMLimits(r, in.Model) {
		return nil
	}
	c, e := s.llmCounters()
	if c == nil {
		return e // nil: counters unavailable, rate_limit_unavailable allow
	}
	now := s.now()
	name := keyName(key)
	km := key.Token + "-" + bus.CounterToken(in.Model)
	budgets := []budgetCheck{{"Key=" + name, "key", key.Token, key.BudgetDuration, key.MaxBudget}}
	if b, ok := key.ModelMaxBudget[in.Model]; ok {
		limit := b.BudgetLimit
		budgets = append(budgets, budgetCheck{"Key=" + name + " model=" + in.Model, "key-model", km, b.TimePeriod, &limit})
	}
	if team != nil {
		budgets = append(budgets, budgetCheck{"Team=" + teamName(*team), "team", team.TeamID, team.BudgetDuration, team.MaxBudget})
	}
	if org != nil {
		budgets = append(budgets, budgetCheck{"Organization=" + orgName(*org), "org", org.OrganizationID, org.BudgetDuration, org.MaxBudget})
	}
	for _, b := range budgets {
		if b.budget == nil {
			continue
		}
		spent, err := c.add(ctx, bus.SpendCounterSubject(b.scope, b.id, period(b.period, now)), "0")
		if err != nil {
			return s.countersDown(err, "budget")
		}
		if float64(spent) >= *b.budget*bus.NanoDollarsInUSD {
			return bus.Errorf(bus.ErrBudgetExceeded, "Budget has been exceeded! %s Current cost: %s, Max budget: %s",
				b.what, usd(float64(spent)/bus.NanoDollarsInUSD), usd(*b.budget))
		}
	}
	minute := now.Unix() / 60
	tpm := []tpmCheck{{"tpm-key", key.Token, "key '" + name + "'", key.TPMLimit},
		{"tpm-km", km, "key '" + name + "' on model " + in.Model, key.ModelTPMLimit[in.Model]}}
	if team != nil {
		tpm = append(tpm, tpmCheck{"tpm-team", team.TeamID, "team '" + teamName(*team) + "'", team.TPMLimit})
	}
	if org != nil {
		tpm = append(tpm, tpmCheck{"tpm-org", org.OrganizationID, "organization '" + orgName(*org) + "'", org.TPMLimit})
	}
	for _, l := range tpm {
		if l.limit <= 0 {
			continue
		}
		used, err := c.add(ctx, bus.RateCounterSubject(l.scope, l.id, minute), "0")
		if err != nil {
			return s.countersDown(err, "tpm_limit")
		}
		if used >= int64(l.limit) {
			e := bus.Errorf(bus.ErrRateLimited, "Rate limit exceeded: %s used %d of its %d tokens per minute", l.name, used, l.limit)
			e.RetryAfter = time.Unix((minute+1)*60, 0).Sub(now)
			return e
		}
	}
	if limit := key.ModelRPMLimit[in.Model]; limit > 0 {
		refused, err := c.allow(ctx, "rpm-km", km, name+" on model "+in.Model, limit)
		if err != nil {
			return s.countersDown(err, "model_rpm_limit")
		}
		if refused != nil {
			return refused
		}
	}
	return nil
}

// budgetCheck is one budget a request must be under: what names it in the
// refusal, the counter's scope and id, its budget_duration, its limit.
type budgetCheck struct {
	what, scope, id, period string
	budget                  *float64
}

// tpmCheck is one tokens-per-minute limit (0: none).
type tpmCheck struct {
	scope, id, name string
	limit           int
}

// llmSpend counts what an answer spent against the caller's limits.
func (s *service) llmSpend(ctx context.Context, env bus.Envelope, body []byte) *bus.Error {
	var in bus.LLMSpendRequest
	if e := decode(body, &in); e != nil {
		return e
	}
	if in.PromptTokens < 0 || in.CompletionTokens < 0 || in.Cost < 0 || math.IsNaN(in.Cost) || math.IsInf(in.Cost, 0) {
		return bus.Errorf(bus.ErrBadRequest, "auth: a spend of negative tokens or cost")
	}
	r, ok := s.llmLimited(env)
	if !ok {
		return nil
	}
	key, team, org := r.key, r.team, r.org
	c, e := s.llmCounters()
	if c == nil {
		return e // nil: counters unavailable, rate_limit_unavailable allow
	}
	now := s.now()
	minute := now.Unix() / 60
	tokens := strconv.Itoa(in.PromptTokens + in.CompletionTokens)
	nano := strconv.FormatInt(int64(math.Round(in.Cost*bus.NanoDollarsInUSD)), 10)
	km := key.Token + "-" + bus.CounterToken(in.Model)
	var adds [][2]string // subject, delta
	if key.TPMLimit > 0 {
		adds = append(adds, [2]string{bus.RateCounterSubject("tpm-key", key.Token, minute), tokens})
	}
	if key.ModelTPMLimit[in.Model] > 0 {
		adds = append(adds, [2]string{bus.RateCounterSubject("tpm-km", km, minute), tokens})
	}
	if nano != "0" {
		adds = append(adds, [2]string{bus.SpendCounterSubject("key", key.Token, period(key.BudgetDuration, now)), nano})
		if b, ok := key.ModelMaxBudget[in.Model]; ok {
			adds = append(adds, [2]string{bus.SpendCounterSubject("key-model", km, period(b.TimePeriod, now)), nano})
		}
	}
	if team != nil {
		if team.TPMLimit > 0 {
			adds = append(adds, [2]string{bus.RateCounterSubject("tpm-team", team.TeamID, minute), tokens})
		}
		if nano != "0" {
			adds = append(adds, [2]string{bus.SpendCounterSubject("team", team.TeamID, period(team.BudgetDuration, now)), nano})
		}
	}
	if org != nil {
		if org.TPMLimit > 0 {
			adds = append(adds, [2]string{bus.RateCounterSubject("tpm-org", org.OrganizationID, minute), tokens})
		}
		if nano != "0" {
			adds = append(adds, [2]string{bus.SpendCounterSubject("org", org.OrganizationID, period(org.BudgetDuration, now)), nano})
		}
	}
	for _, a := range adds {
		if _, err := c.add(ctx, a[0], a[1]); err != nil {
			s.warn.Warn(s.log, "auth: an LLM answer's spend was not counted: its counter is unavailable", "err", err)
			return bus.Errorf(bus.ErrServiceUnavailable, "auth: the spend could not be counted")
		}
	}
	return nil
}

// hasLLMLimits reports whether a request for model has a limit to check.
func hasLLMLimits(r records, model string) bool {
	key, team, org := r.key, r.team, r.org
	_, mb := key.ModelMaxBudget[model]
	if key.MaxBudget != nil || key.TPMLimit > 0 || mb || key.ModelTPMLimit[model] > 0 || key.ModelRPMLimit[model] > 0 {
		return true
	}
	return team != nil && (team.MaxBudget != nil || team.TPMLimit > 0) || org != nil && (org.MaxBudget != nil || org.TPMLimit > 0)
}

// llmCounters is the counters the LLM limits need: JetStream's
// distributed counters (nats-server 2.12+) and the spend stream. Without
// them it answers nil and the refusal (nil when they fail open).
func (s *service) llmCounters() (*counterLimiter, *bus.Error) {
	if c, ok := s.limiter.(*counterLimiter); ok && s.spendReady {
		return c, nil
	}
	return nil, s.countersDown(fmt.Errorf("no distributed counters"), "LLM limits")
}

// countersDown is the answer when a limit cannot be checked: refused,
// unless rate_limit_unavailable is allow.
func (s *service) countersDown(err error, what string) *bus.Error {
	if s.failOpen {
		s.warn.Warn(s.log, "auth: an LLM limit not enforced: its counter is unavailable (rate_limit_unavailable: allow)", "limit", what, "err", err)
		return nil
	}
	s.warn.Warn(s.log, "auth: LLM requests of limited keys refused: their counters are unavailable", "limit", what, "err", err)
	return bus.Errorf(bus.ErrServiceUnavailable, "the %s of this key cannot be checked now, so the request is refused; try again shortly", what)
}

// period is the budget period of now for a budget_duration ("all" for
// none; a malformed one, which writes refuse, counts as none).
func period(duration string, now time.Time) string {
	if duration == "" {
		return "all"
	}
	d, e := parseDuration(duration)
	if e != nil {
		return "all"
	}
	return strconv.FormatInt(now.Unix()/int64(d/time.Second), 10)
}

func usd(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
