package wire

import (
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// The objects of the two wires, each translated to wire to (the object
// being in the other one). Members a function does not name are kept.

// Task states and roles: 0.3's names, 1.0's enum names.
var (
	states = [][2]string{
		{"submitted", "TASK_STATE_SUBMITTED"}, {"working", "TASK_STATE_WORKING"},
		{"completed", "TASK_STATE_COMPLETED"}, {"failed", "TASK_STATE_FAILED"},
		{"canceled", "TASK_STATE_CANCELED"}, {"input-required", "TASK_STATE_INPUT_REQUIRED"},
		{"rejected", "TASK_STATE_REJECTED"}, {"auth-required", "TASK_STATE_AUTH_REQUIRED"},
		{"unknown", "TASK_STATE_UNSPECIFIED"},
	}
	roles = [][2]string{{"user", "ROLE_USER"}, {"agent", "ROLE_AGENT"}, {"unknown", "ROLE_UNSPECIFIED"}}
)

// name maps a 0.3 name to 1.0's or back; a name it does not know is kept.
func name(table [][2]string, v any, to string) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	for _, pair := range table {
		if to == bus.A2AV10 && pair[0] == s {
			return pair[1]
		}
		if to == bus.A2AV03 && pair[1] == s {
			return pair[0]
		}
	}
	return v
}

// final reports whether a task state ends a 0.3 stream (its status-update
// carries final: true): a terminal state, or one that waits for the caller.
func final(state any) bool {
	switch name(states, state, bus.A2AV03) {
	case "completed", "failed", "canceled", "rejected", "input-required", "auth-required":
		return true
	}
	return false
}

// event is a send result or a stream event: a task, a message, a status
// update or an artifact update (0.3: the object with its "kind"; 1.0: the
// object under its case's name).
func event(r map[string]any, to string) map[string]any {
	if to == bus.A2AV10 {
		kind, _ := r["kind"].(string)
		if kind == "" {
			kind = guessKind(r)
		}
		switch kind {
		case "task":
			return map[string]any{"task": task(r, to)}
		case "message":
			return map[string]any{"message": message(r, to)}
		case "status-update":
			delete(r, "kind")
			delete(r, "final") // 1.0 has none: the state tells
			if s, ok := r["status"].(map[string]any); ok {
				r["status"] = status(s, to)
			}
			return map[string]any{"statusUpdate": r}
		case "artifact-update":
			delete(r, "kind")
			if a, ok := r["artifact"].(map[string]any); ok {
				r["artifact"] = artifact(a, to)
			}
			return map[string]any{"artifactUpdate": r}
		}
		return r
	}
	if len(r) != 1 {
		return r
	}
	for c, v := range r {
		o, ok := v.(map[string]any)
		if !ok {
			return r
		}
		switch c {
		case "task":
			return task(o, to)
		case "message":
			return message(o, to)
		case "statusUpdate":
			o["kind"] = "status-update"
			st, _ := o["status"].(map[string]any)
			if st != nil {
				o["status"] = status(st, to)
			}
			o["final"] = st != nil && final(st["state"])
			return o
		case "artifactUpdate":
			o["kind"] = "artifact-update"
			if a, ok := o["artifact"].(map[string]any); ok {
				o["artifact"] = artifact(a, to)
			}
			for _, k := range []string{"append", "lastChunk"} {
				if _, ok := o[k]; !ok {
					o[k] = false
				}
			}
			return o
		}
	}
	return r
}

// guessKind names a 0.3 object sent without its kind.
func guessKind(r map[string]any) string {
	switch {
	case r["messageId"] != nil && r["parts"] != nil:
		return "message"
	case r["artifact"] != nil:
		return "artifact-update"
	case r["taskId"] != nil && r["status"] != nil:
		return "status-update"
	case r["id"] != nil && r["status"] != nil:
		return "task"
	}
	return ""
}

func task(t map[string]any, to string) map[string]any {
	if to == bus.A2AV03 {
		t["kind"] = "task"
	} else {
		delete(t, "kind")
	}
	if s, ok := t["status"].(map[string]any); ok {
		t["status"] = status(s, to)
	}
	each(t, "history", func(m map[string]any) map[string]any { return message(m, to) })
	each(t, "artifacts", func(a map[string]any) map[string]any { return artifact(a, to) })
	return t
}

func status(s map[string]any, to string) map[string]any {
	if v, ok := s["state"]; ok {
		s["state"] = name(states, v, to)
	}
	if m, ok := s["message"].(map[string]any); ok {
		s["message"] = message(m, to)
	}
	return s
}

func message(m map[string]any, to string) map[string]any {
	if to == bus.A2AV03 {
		m["kind"] = "message"
	} else {
		delete(m, "kind")
	}
	if v, ok := m["role"]; ok {
		m["role"] = name(roles, v, to)
	}
	each(m, "parts", func(p map[string]any) map[string]any { return part(p, to) })
	return m
}

func artifact(a map[string]any, to string) map[string]any {
	each(a, "parts", func(p map[string]any) map[string]any { return part(p, to) })
	return a
}

// part: 0.3's {kind: text|file|data, ...}, file being {bytes|uri,
// mimeType, name}; 1.0's {text} | {raw} | {url} | {data}, with mediaType
// and filename beside.
func part(p map[string]any, to string) map[string]any {
	if to == bus.A2AV10 {
		kind, _ := p["kind"].(string)
		delete(p, "kind")
		if f, ok := p["file"].(map[string]any); ok && (kind == "file" || kind == "") {
			delete(p, "file")
			if b, ok := f["bytes"]; ok {
				p["raw"] = b
			}
			if u, ok := f["uri"]; ok {
				p["url"] = u
			}
			if v, ok := f["mimeType"]; ok {
				p["mediaType"] = v
			}
			if v, ok := f["name"]; ok {
				p["filename"] = v
			}
		}
		return p
	}
	out := map[string]any{}
	for _, k := range []string{"metadata"} {
		if v, ok := p[k]; ok {
			out[k] = v
		}
	}
	switch {
	case p["text"] != nil:
		out["kind"], out["text"] = "text", p["text"]
	case p["raw"] != nil || p["url"] != nil:
		f := map[string]any{}
		if v, ok := p["raw"]; ok {
			f["bytes"] = v
		}
		if v, ok := p["url"]; ok {
			f["uri"] = v
		}
		if v, ok := p["mediaType"]; ok && v != "" {
			f["mimeType"] = v
		}
		if v, ok := p["filename"]; ok && v != "" {
			f["name"] = v
		}
		out["kind"], out["file"] = "file", f
	case p["data"] != nil:
		out["kind"], out["data"] = "data", p["data"]
	default:
		for k, v := range p {
			out[k] = v
		}
	}
	return out
}

// configuration: 0.3's blocking and pushNotificationConfig, 1.0's
// returnImmediately (its opposite) and taskPushNotificationConfig. 1.0
// blocks unless returnImmediately; 0.3 agents read an absent blocking
// either way (the SDKs differ), so a 1.0 request says blocking always.
func configuration(c map[string]any, to string) map[string]any {
	if to == bus.A2AV10 {
		if b, ok := c["blocking"].(bool); ok {
			c["returnImmediately"] = !b
		}
		delete(c, "blocking")
		if p, ok := c["pushNotificationConfig"].(map[string]any); ok {
			c["taskPushNotificationConfig"] = pushConfig(p, to)
		}
		delete(c, "pushNotificationConfig")
		return c
	}
	r, _ := c["returnImmediately"].(bool)
	c["blocking"] = !r
	delete(c, "returnImmediately")
	if p, ok := c["taskPushNotificationConfig"].(map[string]any); ok {
		c["pushNotificationConfig"] = pushConfig(p, to)
	}
	delete(c, "taskPushNotificationConfig")
	return c
}

// pushConfig: 0.3's authentication {schemes: [...], credentials}, 1.0's
// {scheme, credentials}.
func pushConfig(p map[string]any, to string) map[string]any {
	a, ok := p["authentication"].(map[string]any)
	if !ok {
		return p
	}
	if to == bus.A2AV10 {
		if s, ok := a["schemes"].([]any); ok && len(s) > 0 {
			a["scheme"] = s[0]
		}
		delete(a, "schemes")
	} else {
		if s, ok := a["scheme"].(string); ok && strings.TrimSpace(s) != "" {
			a["schemes"] = []any{s}
		}
		delete(a, "scheme")
	}
	delete(p, "tenant")
	return p
}

// each replaces every object of the list under key with f of it.
func each(o map[string]any, key string, f func(map[string]any) map[string]any) {
	list, ok := o[key].([]any)
	if !ok {
		return
	}
	for i, v := range list {
		if m, ok := v.(map[string]any); ok {
			list[i] = f(m)
		}
	}
}
