package conformance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// maxStateLen bounds a requestState the fixture will look at; its own are
// far smaller.
const maxStateLen = 4096

// mrtrState is what the MRTR tools keep between rounds (SEP-2322): the
// server is stateless, so it travels in requestState, sealed.
type mrtrState struct {
	Tool  string `json:"tool"`           // the tool (or prompt) that minted it
	Round int    `json:"round"`          // the round that asked for input
	Name  string `json:"name,omitempty"` // test_input_required_result_multi_round: the name from round 1
	Nonce string `json:"nonce"`          // makes every state distinct
}

// stateSealer integrity-protects requestState with HMAC-SHA256 under a key
// made at start: "<base64url JSON>.<base64url MAC>". Clients must echo it
// unchanged; a changed one fails the MAC (the spec's "Server Requirements":
// servers MUST verify state they rely on).
type stateSealer struct {
	key []byte
}

func newStateSealer() *stateSealer {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("conformance: no randomness for the requestState key: " + err.Error())
	}
	return &stateSealer{key: key}
}

func (s *stateSealer) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal returns st as a requestState.
func (s *stateSealer) seal(st mrtrState) string {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	st.Nonce = base64.RawURLEncoding.EncodeToString(nonce)
	b, err := json.Marshal(st)
	if err != nil {
		panic("conformance: encoding requestState: " + err.Error())
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + s.mac(payload)
}

var errBadState = errors.New("requestState failed its integrity check")

// open verifies a requestState minted by seal for tool and returns it.
func (s *stateSealer) open(tool, state string) (mrtrState, error) {
	var st mrtrState
	payload, mac, ok := strings.Cut(state, ".")
	if !ok || len(state) > maxStateLen || !hmac.Equal([]byte(mac), []byte(s.mac(payload))) {
		return st, errBadState
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &st) != nil || st.Tool != tool {
		return st, errBadState
	}
	return st, nil
}

// invalidState is the JSON-RPC error for a requestState that fails open:
// -32602, which go-sdk answers with HTTP 400 on a modern request.
func invalidState(tool string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: tool + ": " + errBadState.Error()}
}
