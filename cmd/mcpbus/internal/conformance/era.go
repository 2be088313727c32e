package conformance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// modernVersion is the first protocol revision of the stateless era
// (SEP-2575): no initialize, no sessions, a _meta triple on every request.
const modernVersion = "2026-07-28"

// maxPeek bounds how much of a POST body the era rule reads. A larger body
// is decided by its MCP-Protocol-Version header alone (and still reaches its
// handler whole).
const maxPeek = 1 << 20

// eraMux serves both protocol eras on one endpoint, as a dual-era server may
// (spec basic/versioning): a request of the stateless era goes to modern, a
// go-sdk handler with Stateless set (the only mode in which go-sdk v1.8.0
// serves 2026-07-28, streamable.go ~1523); everything else, legacy sessions
// and their GET and DELETE among it, goes to legacy, the stateful handler.
type eraMux struct {
	legacy, modern http.Handler
}

func (m *eraMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isModern(r) {
		m.modern.ServeHTTP(w, r)
		return
	}
	m.legacy.ServeHTTP(w, r)
}

// isModern is the era rule: a POST whose MCP-Protocol-Version header is
// >= 2026-07-28, or that is a request (it has an id) whose
// params._meta["io.modelcontextprotocol/protocolVersion"] is a string
// >= 2026-07-28 (go-sdk's own rule, shared.go validateRequestMeta). A GET or
// DELETE is modern only with such a header and no Mcp-Session-Id: the
// stateless handler answers it 405, while a legacy session keeps its stream.
// Comparing strings is deliberate: an unknown version sorting after
// 2026-07-28 reaches the handler that answers -32022 with every supported
// version. The body is read (at most maxPeek bytes) and put back.
func isModern(r *http.Request) bool {
	if r.Header.Get("MCP-Protocol-Version") >= modernVersion {
		return r.Method == http.MethodPost || r.Header.Get("Mcp-Session-Id") == ""
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return false
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, maxPeek+1))
	r.Body = restored{Reader: io.MultiReader(bytes.NewReader(head), r.Body), Closer: r.Body}
	if err != nil || len(head) > maxPeek {
		return false
	}
	return metaVersion(head) >= modernVersion
}

// metaVersion returns params._meta's protocol version of a single JSON-RPC
// request, or "" for anything else (a batch, a notification, a response,
// invalid JSON, a version that is not a string).
func metaVersion(body []byte) string {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method == "" || len(msg.ID) == 0 || string(msg.ID) == "null" {
		return ""
	}
	var v string
	if json.Unmarshal(msg.Params.Meta[mcp.MetaKeyProtocolVersion], &v) != nil {
		return ""
	}
	return v
}

// restored is a request body put back after peeking: the bytes read, then
// the rest, closed through the original body.
type restored struct {
	io.Reader
	io.Closer
}
