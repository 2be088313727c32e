package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Message is a JSON-RPC 2.0 message with every part kept raw, so ids, params,
// results and error data pass through byte for byte: unknown fields, _meta and
// structuredContent survive the gateway.
type Message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

// ParseMessage decodes one JSON-RPC 2.0 message and checks its shape: an
// object with "jsonrpc":"2.0" and exactly one of a request (method and id), a
// notification (method, no id) or a response (id and exactly one of result
// and error); method a non-empty string, id a string or a number of at most
// MaxIDLen bytes, params an object. Member names are matched exactly, and a
// message whose objects the gateway reads hold a key twice (exactly or
// ignoring case) is refused (jsonscan.go), so what the gateway reads is what
// an upstream reads.
func ParseMessage(data []byte) (*Message, *Error) {
	data = trimJSONSpace(data)
	if len(data) == 0 {
		return nil, Errorf(ErrInvalidRequest, "empty body: expected one JSON-RPC message")
	}
	if data[0] == '[' {
		return nil, Errorf(ErrInvalidRequest, "JSON-RPC batches are not supported: send one message per POST")
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, Errorf(ErrParse, "parse error: %v", err)
	}
	if data[0] != '{' {
		return nil, Errorf(ErrInvalidRequest, "invalid request: a JSON-RPC message is an object")
	}
	if e := checkKeys(data, "the message", messageMembers); e != nil {
		return nil, e
	}
	var m Message
	var hasMethod bool
	_, e := eachMember(data, 0, func(key, val []byte) *Error {
		switch string(key) {
		case "jsonrpc":
			if string(val) != `"2.0"` && unquoteValue(val) != "2.0" {
				return Errorf(ErrInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
			}
			m.JSONRPC = "2.0"
		case "id":
			m.ID = val
		case "method":
			if val[0] != '"' {
				return Errorf(ErrInvalidRequest, `invalid request: "method" must be a string`)
			}
			m.Method, hasMethod = unquote(val), true
		case "params":
			m.Params = val
		case "result":
			m.Result = val
		case "error":
			m.Error = val
		default:
			for _, member := range messageMemberNames {
				if bytes.EqualFold(key, []byte(member)) {
					return Errorf(ErrInvalidRequest, "invalid request: unknown member %q (JSON-RPC member names are lower case)", Shorten(string(key), 32))
				}
			}
		}
		return nil
	})
	if e != nil {
		return nil, e
	}
	if m.JSONRPC != "2.0" {
		return nil, Errorf(ErrInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	if e := m.checkShape(hasMethod); e != nil {
		return nil, e
	}
	return &m, nil
}

// trimJSONSpace trims the whitespace JSON allows around a value (space, tab,
// line feed, carriage return), and nothing else: bytes.TrimSpace would take
// a vertical tab or a no-break space, which make the text invalid JSON.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

var messageMemberNames = []string{"jsonrpc", "id", "method", "params", "result", "error"}

// checkShape checks m is exactly one of a request, a notification and a
// response, with members of the right types.
func (m *Message) checkShape(hasMethod bool) *Error {
	if len(m.ID) > 0 {
		if c := m.ID[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
			return Errorf(ErrInvalidRequest, `invalid request: "id" must be a string or a number`)
		}
		if len(m.ID) > MaxIDLen {
			return Errorf(ErrInvalidRequest, `invalid request: "id" is longer than %d bytes`, MaxIDLen)
		}
	}
	hasResult, hasError := len(m.Result) > 0, len(m.Error) > 0
	if hasMethod {
		if m.Method == "" {
			return Errorf(ErrInvalidRequest, `invalid request: "method" must not be empty`)
		}
		if hasResult || hasError {
			return Errorf(ErrInvalidRequest, `invalid request: a message with "method" must not carry "result" or "error"`)
		}
		if len(m.Params) > 0 && m.Params[0] != '{' && string(m.Params) != "null" {
			return Errorf(ErrInvalidRequest, `invalid request: "params" must be an object`)
		}
		return nil
	}
	switch {
	case len(m.ID) == 0:
		return Errorf(ErrInvalidRequest, `invalid request: neither "method" nor "id"`)
	case hasResult && hasError:
		return Errorf(ErrInvalidRequest, `invalid request: a response carries "result" or "error", not both`)
	case !hasResult && !hasError:
		return Errorf(ErrInvalidRequest, `invalid request: a message with "id" and no "method" is a response and needs "result" or "error"`)
	case len(m.Params) > 0:
		return Errorf(ErrInvalidRequest, `invalid request: a response must not carry "params"`)
	case hasError:
		code, hasCode, _ := Field(m.Error, "code")
		msg, hasMsg, _ := Field(m.Error, "message")
		if m.Error[0] != '{' || !hasCode || !hasMsg || len(msg) == 0 || msg[0] != '"' {
			return Errorf(ErrInvalidRequest, `invalid request: "error" must be an object with an integer "code" and a string "message"`)
		}
		if _, err := strconv.ParseInt(string(code), 10, 64); err != nil {
			return Errorf(ErrInvalidRequest, `invalid request: "error.code" must be an integer`)
		}
	}
	return nil
}

// unquoteValue returns the string a JSON value holds, or "" when it is not a string.
func unquoteValue(val []byte) string {
	if len(val) < 2 || val[0] != '"' {
		return ""
	}
	return unquote(val)
}

// IsRequest reports whether m is a request (a method and an id).
func (m *Message) IsRequest() bool { return m.Method != "" && len(m.ID) > 0 }

// IsNotification reports whether m is a notification (a method and no id).
func (m *Message) IsNotification() bool { return m.Method != "" && len(m.ID) == 0 }

// IsResponse reports whether m is a response (an id and no method).
func (m *Message) IsResponse() bool { return m.Method == "" && len(m.ID) > 0 }

var nullID = json.RawMessage("null")

// ResultResponse encodes a response carrying result verbatim.
func ResultResponse(id, result json.RawMessage) []byte {
	if len(id) == 0 {
		id = nullID
	}
	b := make([]byte, 0, len(id)+len(result)+36)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

// RawErrorResponse encodes a response carrying an error object verbatim.
func RawErrorResponse(id, errObj json.RawMessage) []byte {
	if len(id) == 0 {
		id = nullID
	}
	b := make([]byte, 0, len(id)+len(errObj)+36)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":`...)
	b = append(b, errObj...)
	return append(b, '}')
}

// ErrorResponse encodes e as a JSON-RPC error response to id. The stable code
// travels in error.data.mcpbus_code so clients can tell gateway errors apart.
func ErrorResponse(id json.RawMessage, e *Error) []byte {
	return errorResponse(id, e, e.Kind.RPC)
}

// ErrorResponseFor is ErrorResponse for a client of the era modern says:
// a stateless-era client gets the code the spec lets mcpbus use
// (Kind.ModernRPC).
func ErrorResponseFor(id json.RawMessage, e *Error, modern bool) []byte {
	if !modern {
		return ErrorResponse(id, e)
	}
	return errorResponse(id, e, e.Kind.ModernRPC())
}

func errorResponse(id json.RawMessage, e *Error, code int) []byte {
	data := map[string]any{"mcpbus_code": e.Kind.Code}
	for k, v := range e.Data {
		if k != "mcpbus_code" {
			data[k] = v
		}
	}
	if el := elicitationData(e); el != nil {
		data["elicitations"] = el
	}
	obj := struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{code, e.Message, data}
	raw, _ := json.Marshal(obj)
	return RawErrorResponse(id, raw)
}

// Notification encodes a notification with raw params.
func Notification(method string, params json.RawMessage) []byte {
	b := make([]byte, 0, len(method)+len(params)+48)
	b = append(b, `{"jsonrpc":"2.0","method":`...)
	b = strconv.AppendQuote(b, method)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

// CanonicalID canonicalises a JSON-RPC id or progress token (a JSON string
// or number) so two spellings of one compare equal: "x" and "\u0078", 7 and
// 7.0; "7" and 7 stay apart. "" for anything else.
func CanonicalID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return "s:" + s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	if f, err := strconv.ParseFloat(n.String(), 64); err == nil {
		return "n:" + strconv.FormatFloat(f, 'g', -1, 64) // 7, 7.0 and 7e0 are one token
	}
	return "n:" + n.String()
}
