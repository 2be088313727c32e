package ingress

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Token exchange (RFC 8693; bus/useroauth_exchange.go). Before an OAuth
// caller's request goes on, every token-exchange server the caller may use
// gets an exchanged token for the caller: a worker of the server exchanges
// the caller's token and stores the result as the caller's credential.
// This ingress remembers until when each (user, server) is covered and asks
// again only a minute before that ends, so a call costs a map lookup.

// exchangeMargin is how long before an exchanged token's expiry a new one
// is asked for.
const exchangeMargin = time.Minute

// maxExchanged bounds the memory of exchanges; when full it starts over.
const maxExchanged = 10000

// exchanges is what this ingress exchanged, and the exchanges under way.
type exchanges struct {
	mu      sync.Mutex
	until   map[string]time.Time // user key + "\n" + server -> good until
	flights map[string]chan struct{}
}

func (x *exchanges) covered(k string, now time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	u, ok := x.until[k]
	return ok && now.Add(exchangeMargin).Before(u)
}

// exchangeFor makes sure each token-exchange server id may use holds a
// token exchanged for token. A failed exchange is logged, not returned: the
// call goes on, and the server's worker answers it with the reason.
func (g *Ingress) exchangeFor(ctx context.Context, id bus.Identity, token string) {
	if g.o.Servers == nil || id.User == "" {
		return
	}
	now := time.Now()
	user := id.UserKey()
	for _, s := range g.o.Servers.List() {
		if !s.TokenExchange() || !id.Permissions.AllowsServer(s) {
			continue
		}
		k := user + "\n" + s.Name
		if g.exchanged.covered(k, now) {
			continue
		}
		g.exchangeOnce(ctx, k, s.Name, user, token)
	}
}

// exchangeOnce runs one exchange for k at a time on this ingress; others
// asking meanwhile wait for it.
func (g *Ingress) exchangeOnce(ctx context.Context, k, server, user, token string) {
	x := &g.exchanged
	x.mu.Lock()
	if ch := x.flights[k]; ch != nil {
		x.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	ch := make(chan struct{})
	x.flights[k] = ch
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.flights, k)
		x.mu.Unlock()
		close(ch)
	}()

	in := bus.OAuthExchange{User: user, SubjectToken: token}
	if e := in.Validate(); e != nil {
		g.log.Warn("token exchange not asked: the caller's token cannot be sent", "server", server, "err", e.Message)
		return
	}
	data, _ := json.Marshal(in)
	rctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(rctx, &nats.Msg{Subject: bus.ToolOAuthExchange(server), Data: data})
	if err != nil {
		g.log.Warn("token exchange failed: the server's workers cannot be reached", "server", server, "err", bus.RequestError("tool worker", err).Message)
		return
	}
	if e := bus.ReplyError(reply); e != nil {
		g.log.Warn("token exchange refused", "server", server, "user", bus.UserIDOfKey(user), "reason", e.Message)
		return
	}
	var out bus.OAuthExchangeAnswer
	_ = json.Unmarshal(reply.Data, &out)
	until := time.Now().Add(exchangeMargin + bus.VerifyCacheTTL) // no expiry given: ask again soon
	if out.ExpiresAt != nil {
		until = *out.ExpiresAt
	}
	x.mu.Lock()
	if len(x.until) >= maxExchanged {
		clear(x.until)
	}
	x.until[k] = until
	x.mu.Unlock()
}
