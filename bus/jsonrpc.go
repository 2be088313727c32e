package bus

import (
	"bytes"
	"encoding/json"
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

// ParseMessage decodes one JSON-RPC message and checks its shape.
func ParseMessage(data []byte) (*Message, *Error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, Errorf(ErrInvalidRequest, "empty body: expected one JSON-RPC message")
	}
	if data[0] == '[' {
		return nil, Errorf(ErrInvalidRequest, "JSON-RPC batches are not supported: send one message per POST")
	}
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, Errorf(ErrParse, "parse error: %v", err)
	}
	if m.JSONRPC != "2.0" {
		return nil, Errorf(ErrInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	if m.Method == "" && len(m.ID) == 0 {
		return nil, Errorf(ErrInvalidRequest, `invalid request: neither "method" nor "id"`)
	}
	if len(m.ID) > 0 && m.ID[0] != '"' && (m.ID[0] < '0' || m.ID[0] > '9') && m.ID[0] != '-' {
		return nil, Errorf(ErrInvalidRequest, `invalid request: "id" must be a string or a number`)
	}
	return &m, nil
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
	obj := struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{e.Kind.RPC, e.Message, map[string]string{"mcpbus_code": e.Kind.Code}}
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
