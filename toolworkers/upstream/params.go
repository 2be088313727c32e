package upstream

// Tool parameters mirrored into Mcp-Param-* headers for a stateless-era
// server (SEP-2243; bus.ParamHeaders has the rules). The client learns each
// tool's annotations from the tools/list results it relays, sends the
// headers on every tools/call, and when the server says they do not match
// (-32020, HeaderMismatch), lists the tools again and retries once, as the
// spec asks of a client. A tool whose annotations break the rules is left
// out of the list a client gets, as the spec requires of a client, with a
// warning in the log.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
)

// maxRelistPages bounds the tools/list pages read to relearn annotations.
const maxRelistPages = 20

// paramTable is what a client learned of its server's tools' annotations.
type paramTable struct {
	mu    sync.Mutex
	tools map[string][]bus.ParamHeader // tool name -> annotated parameters
}

func (p *paramTable) get(tool string) []bus.ParamHeader {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tools[tool]
}

// errParamMismatch says the server refused a tools/call's Mcp-Param-*
// headers: the client's idea of the tool's schema is stale.
type errParamMismatch struct{ err error }

func (e *errParamMismatch) Error() string { return e.err.Error() }
func (e *errParamMismatch) Unwrap() error { return e.err }

// learnTools reads a tools/list result's annotations into the table and
// returns the result without the tools whose annotations are invalid
// (unchanged, and not copied, when every tool is valid).
func (c *streamableClient) learnTools(result json.RawMessage) json.RawMessage {
	var r struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if json.Unmarshal(result, &r) != nil {
		return result
	}
	learned := map[string][]bus.ParamHeader{}
	var invalid []int
	for i, t := range r.Tools {
		ps, err := bus.ParamHeaders(t.InputSchema)
		if err != nil {
			c.log.Warn("an upstream tool's x-mcp-header annotations are invalid: the tool is left out of tools/list", "server", c.server, "tool", bus.Shorten(t.Name, 128), "reason", err.Error())
			invalid = append(invalid, i)
			continue
		}
		if ps != nil {
			learned[t.Name] = ps
		}
	}
	c.params.mu.Lock()
	if c.params.tools == nil {
		c.params.tools = map[string][]bus.ParamHeader{}
	}
	for _, t := range r.Tools {
		delete(c.params.tools, t.Name)
	}
	for name, ps := range learned {
		c.params.tools[name] = ps
	}
	c.params.mu.Unlock()
	if len(invalid) == 0 {
		return result
	}
	return dropTools(result, invalid)
}

// dropTools is a tools/list result without the tools at the given indexes,
// every other member kept as it was.
func dropTools(result json.RawMessage, drop []int) json.RawMessage {
	var m map[string]json.RawMessage
	var tools []json.RawMessage
	if json.Unmarshal(result, &m) != nil || json.Unmarshal(m["tools"], &tools) != nil {
		return result
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for i, t := range tools {
		if len(drop) > 0 && drop[0] == i {
			drop = drop[1:]
			continue
		}
		kept = append(kept, t)
	}
	m["tools"], _ = json.Marshal(kept)
	out, _ := json.Marshal(m)
	return out
}

// paramHeaders are the Mcp-Param-* headers of a tools/call with params.
func (c *streamableClient) paramHeaders(params json.RawMessage) http.Header {
	name, ok, _ := bus.StringField(params, "name")
	if !ok {
		return nil
	}
	ps := c.params.get(name)
	if ps == nil {
		return nil
	}
	args, _, _ := bus.Field(params, "arguments")
	return bus.ParamHeaderValues(ps, args)
}

// relist lists the server's tools again (every page, bounded), so the
// table holds their current annotations.
func (c *streamableClient) relist(ctx context.Context, s *session) error {
	cursor := ""
	for page := 0; page < maxRelistPages; page++ {
		p := json.RawMessage(`{}`)
		if cursor != "" {
			p, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		msg, err := c.callModern(ctx, s, bus.MethodToolsList, p, nil)
		if err != nil {
			return err
		}
		if len(msg.Error) > 0 {
			return errors.New("tools/list failed: " + rpcErrorMessage(msg.Error))
		}
		if cursor, _, _ = bus.StringField(msg.Result, "nextCursor"); cursor == "" {
			return nil
		}
	}
	return nil
}
