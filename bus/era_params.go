package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Tool parameters mirrored into HTTP headers (MCP 2026-07-28, SEP-2243):
// a property of a tool's inputSchema annotated "x-mcp-header": "Region"
// travels, besides the body, as the header Mcp-Param-Region on a tools/call
// over Streamable HTTP, so intermediaries can route on it without reading
// the body. A client must send them; a tool whose annotations break the
// rules is one a client must not offer at all.

// HeaderParamPrefix starts the header a parameter is mirrored into.
const HeaderParamPrefix = "Mcp-Param-"

// MaxParamHeaders bounds the annotated parameters of one tool.
const MaxParamHeaders = 64

// ParamHeader is one annotated parameter: where it is in the arguments (a
// chain of properties keys) and the header name it is mirrored into.
type ParamHeader struct {
	Path   []string
	Header string // the name after Mcp-Param-
}

// ParamHeaders reads a tool's inputSchema for x-mcp-header annotations. An
// error says why the tool definition is invalid: an annotation off a chain
// of properties keys (under items, oneOf, $ref, ...), on a type other than
// string, integer or boolean, not an HTTP token, repeated (case-insensitively),
// or more than MaxParamHeaders of them. A schema with none gives nil.
func ParamHeaders(schema json.RawMessage) ([]ParamHeader, error) {
	if len(schema) == 0 || !bytes.Contains(schema, []byte(`"x-mcp-header"`)) {
		return nil, nil
	}
	var root any
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, fmt.Errorf("inputSchema is not JSON")
	}
	var out []ParamHeader
	seen := map[string]bool{}
	var walk func(node any, path []string, reachable bool) error
	walk = func(node any, path []string, reachable bool) error {
		switch n := node.(type) {
		case []any:
			for _, v := range n {
				if err := walk(v, path, false); err != nil {
					return err
				}
			}
		case map[string]any:
			if raw, ok := n["x-mcp-header"]; ok {
				name, isString := raw.(string)
				switch {
				case !reachable || len(path) == 0:
					return fmt.Errorf("x-mcp-header at %s is not on a chain of properties keys", pathString(path))
				case !isString || !validParamName(name):
					return fmt.Errorf("x-mcp-header at %s is not an HTTP header name token", pathString(path))
				case seen[strings.ToLower(name)]:
					return fmt.Errorf("x-mcp-header %q is used twice", name)
				}
				if t, _ := n["type"].(string); t != "string" && t != "integer" && t != "boolean" {
					return fmt.Errorf("x-mcp-header at %s is on a parameter of type %q: only string, integer and boolean may be mirrored", pathString(path), t)
				}
				seen[strings.ToLower(name)] = true
				out = append(out, ParamHeader{Path: append([]string(nil), path...), Header: name})
				if len(out) > MaxParamHeaders {
					return fmt.Errorf("more than %d x-mcp-header annotations", MaxParamHeaders)
				}
			}
			for k, v := range n {
				if k == "properties" {
					props, ok := v.(map[string]any)
					if !ok {
						continue
					}
					for name, sub := range props {
						if err := walk(sub, append(path, name), reachable); err != nil {
							return err
						}
					}
					continue
				}
				if err := walk(v, path, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, nil, true); err != nil {
		return nil, err
	}
	return out, nil
}

func pathString(path []string) string {
	if len(path) == 0 {
		return "the schema root"
	}
	return "properties." + strings.Join(path, ".properties.")
}

// validParamName reports whether s is an RFC 9110 token.
func validParamName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParamHeaderValues are the Mcp-Param-* headers of a call with arguments:
// each annotated parameter present in them, as a string (strings as they
// are, integers in decimal, booleans true/false), in the Base64 form when
// it cannot travel as it is (EncodeHeaderValue). A parameter absent, null
// or of another kind is left out: the server judges the call.
func ParamHeaderValues(params []ParamHeader, arguments json.RawMessage) http.Header {
	if len(params) == 0 || len(arguments) == 0 {
		return nil
	}
	var args map[string]any
	d := json.NewDecoder(bytes.NewReader(arguments))
	d.UseNumber()
	if d.Decode(&args) != nil {
		return nil
	}
	h := http.Header{}
	for _, p := range params {
		var v any = args
		for _, k := range p.Path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			if _, err := strconv.ParseInt(x.String(), 10, 64); err != nil {
				continue // not an integer: no header
			}
			s = x.String()
		case bool:
			s = strconv.FormatBool(x)
		default:
			continue
		}
		h[http.CanonicalHeaderKey(HeaderParamPrefix+p.Header)] = []string{EncodeHeaderValue(s)}
	}
	return h
}

// CheckParamHeaders checks a tools/call's Mcp-Param-* headers (sent: the
// name after the prefix -> the value as sent) against its arguments, for
// the tool's annotated parameters (SEP-2243 server validation): a parameter
// present in the arguments needs its header, equal once decoded (integers
// compared as numbers); an absent or null one must have none. Headers no
// annotation names are not the gateway's to judge. The error names the
// header and why, never a value; it is answered 400 with -32020.
func CheckParamHeaders(params []ParamHeader, arguments json.RawMessage, sent map[string]string) error {
	if len(params) == 0 {
		return nil
	}
	byName := make(map[string]string, len(sent))
	for k, v := range sent {
		byName[strings.ToLower(k)] = v
	}
	want := ParamHeaderValues(params, arguments)
	var args map[string]any
	d := json.NewDecoder(bytes.NewReader(arguments))
	d.UseNumber()
	_ = d.Decode(&args)
	for _, p := range params {
		name := HeaderParamPrefix + p.Header
		got, present := byName[strings.ToLower(p.Header)]
		expected, has := want[http.CanonicalHeaderKey(name)]
		switch {
		case !has && !present:
			continue
		case !has && present:
			if argumentPresent(args, p.Path) {
				return fmt.Errorf("%s header given for parameter %q, which is not a string, integer or boolean", name, strings.Join(p.Path, "."))
			}
			return fmt.Errorf("%s header given for parameter %q, which the arguments do not have", name, strings.Join(p.Path, "."))
		case has && !present:
			return fmt.Errorf("%s header missing for parameter %q", name, strings.Join(p.Path, "."))
		}
		decoded, ok := DecodeHeaderValue(got)
		if !ok {
			return fmt.Errorf("%s header is not valid: a Base64 form that does not decode", name)
		}
		body, _ := DecodeHeaderValue(expected[0])
		if decoded != body && !sameInteger(decoded, body) {
			return fmt.Errorf("%s header does not match the arguments' %q", name, strings.Join(p.Path, "."))
		}
	}
	return nil
}

func argumentPresent(args map[string]any, path []string) bool {
	var v any = args
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = m[k]
	}
	return v != nil
}

// sameInteger reports whether a and b are the same integer written two ways.
func sameInteger(a, b string) bool {
	x, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x == y
}
