// Package wire translates A2A JSON-RPC between the protocol's two wires:
// 0.3 (slash methods, "kind" on every object, "user"/"completed") and 1.0
// (PascalCase methods, proto-JSON: "ROLE_USER", "TASK_STATE_COMPLETED", a
// result or event wrapped in its case, {"task": ...}). The gateway speaks
// the caller's wire to the caller and the agent's to the agent; where they
// differ, the params of a request and the results and events of its answer
// go through here. Members the translation does not know are kept.
//
// Translated: message/send (SendMessage), message/stream
// (SendStreamingMessage), tasks/get (GetTask), tasks/cancel (CancelTask)
// and tasks/resubscribe (SubscribeToTask). Other methods pass only between
// callers and agents of the same wire (ErrUntranslated).
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpbus/mcpbus/bus"
)

// Method names, 0.3 to 1.0, of the methods translated.
var methods03to10 = map[string]string{
	"message/send":      "SendMessage",
	"message/stream":    "SendStreamingMessage",
	"tasks/get":         "GetTask",
	"tasks/cancel":      "CancelTask",
	"tasks/resubscribe": "SubscribeToTask",
}

var methods10to03 = func() map[string]string {
	m := map[string]string{}
	for k, v := range methods03to10 {
		m[v] = k
	}
	return m
}()

// ErrUntranslated: a method that is not translated between the wires.
var ErrUntranslated = errors.New("not translated between A2A 0.3 and 1.0")

// Method is method's name on wire to (method being on wire from).
func Method(method, from, to string) (string, error) {
	if from == to {
		return method, nil
	}
	table := methods03to10
	if from == bus.A2AV10 {
		table = methods10to03
	}
	out, ok := table[method]
	if !ok {
		return "", fmt.Errorf("%s: %w", method, ErrUntranslated)
	}
	return out, nil
}

// Params translates the params of method (named on wire from) to wire to.
func Params(method string, params json.RawMessage, from, to string) (json.RawMessage, error) {
	if from == to || len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		return params, nil
	}
	p, err := object(params)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	switch method {
	case "message/send", "message/stream", "SendMessage", "SendStreamingMessage":
		if m, ok := p["message"].(map[string]any); ok {
			p["message"] = message(m, to)
		}
		c, _ := p["configuration"].(map[string]any)
		if c == nil && to == bus.A2AV03 {
			c = map[string]any{} // 1.0 blocks unless told not to; say so
		}
		if c != nil {
			p["configuration"] = configuration(c, to)
		}
	}
	if to == bus.A2AV03 {
		delete(p, "tenant") // 1.0's; a 0.3 agent knows none
	}
	return encode(p)
}

// Result translates the result of method (named on wire from) to wire to.
func Result(method string, result json.RawMessage, from, to string) (json.RawMessage, error) {
	if from == to {
		return result, nil
	}
	r, err := object(result)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	switch method {
	case "message/send", "SendMessage":
		return encode(event(r, to))
	case "tasks/get", "tasks/cancel", "GetTask", "CancelTask":
		return encode(task(r, to))
	}
	return nil, fmt.Errorf("%s: %w", method, ErrUntranslated)
}

// Event translates one event of a stream (the result of one of its
// JSON-RPC responses) from wire from to wire to.
func Event(result json.RawMessage, from, to string) (json.RawMessage, error) {
	if from == to {
		return result, nil
	}
	r, err := object(result)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return encode(event(r, to))
}

// object decodes a JSON object, keeping numbers as written.
func object(raw json.RawMessage) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func encode(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
