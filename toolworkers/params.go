package toolworkers

// A 2026-07-28 caller's Mcp-Param-* headers (SEP-2243), checked where the
// tool's schema is known: a server that processes the body must refuse a
// header that does not match it (400, -32020). The worker reads the
// annotations from the whole tools/list of the call's link, through its
// catalog cache, once per list change.

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// maxParamPages bounds the tools/list pages read for annotations.
const maxParamPages = 20

// checkParamHeaders refuses a tools/call whose Mcp-Param-* headers do not
// match its arguments under the tool's annotations. When the tools cannot
// be listed the call goes on: the upstream judges it.
func (w *Worker) checkParamHeaders(ctx context.Context, l *link, env *bus.Envelope, tool string, params json.RawMessage) *bus.Error {
	annotated, ok := w.toolParams(ctx, l, tool)
	if !ok || len(annotated) == 0 {
		return nil
	}
	args, _, _ := bus.Field(params, "arguments")
	if err := bus.CheckParamHeaders(annotated, args, env.ParamHeaders); err != nil {
		return bus.Errorf(bus.ErrHeaderMismatch, "%v", err)
	}
	return nil
}

// toolParams returns tool's annotated parameters; ok is false when the
// tools could not be listed.
func (w *Worker) toolParams(ctx context.Context, l *link, tool string) ([]bus.ParamHeader, bool) {
	c := &l.cache
	c.mu.Lock()
	known, gen, until := c.params, c.gen[bus.MethodToolsList], c.paramsUntil
	c.mu.Unlock()
	if known != nil && (until.IsZero() || time.Now().Before(until)) {
		return known[tool], true
	}
	listChanged := func() bool {
		info, err := l.up.Info(ctx)
		return err == nil && declaresListChanged(info, "tools")
	}
	learned := map[string][]bus.ParamHeader{}
	cursor := ""
	for page := 0; page < maxParamPages; page++ {
		p := json.RawMessage(`{}`)
		if cursor != "" {
			p, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		key, _ := catalogKey(bus.MethodToolsList, p)
		resp, _, err := c.fetch(ctx, key, bus.MethodToolsList, func() (*bus.Message, error) {
			var r *bus.Message
			err := w.guard(ctx, func() (err error) {
				r, err = l.up.Call(ctx, bus.MethodToolsList, p, nil)
				return err
			})
			return r, err
		}, listChanged)
		if err != nil || resp == nil || len(resp.Error) > 0 {
			return nil, false
		}
		var r struct {
			Tools []struct {
				Name        string          `json:"name"`
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if json.Unmarshal(resp.Result, &r) != nil {
			return nil, false
		}
		for _, t := range r.Tools {
			if ps, err := bus.ParamHeaders(t.InputSchema); err == nil && ps != nil {
				learned[t.Name] = ps
			}
		}
		if cursor = r.NextCursor; cursor == "" {
			break
		}
	}
	var expires time.Time
	if !listChanged() {
		expires = time.Now().Add(catalogTTL) // as the lists themselves
	}
	c.mu.Lock()
	if c.gen[bus.MethodToolsList] == gen {
		c.params, c.paramsUntil = learned, expires
	}
	c.mu.Unlock()
	return learned[tool], true
}
