package bus

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Parked calls (MCP 2026-07-28 clients in front of session-era upstreams):
// when an older upstream asks a stateless-era caller for input mid-call
// (elicitation/create and the like), the worker replica running the call
// keeps it open upstream and answers the caller input_required, with a
// requestState naming the parked call. The caller's retry carries it back;
// it must reach that replica, whichever ingress and router it comes
// through, so the state names the replica and the router sends the retry
// there (ParkSubject), never to the server's queue group.
//
// The state is a reference, not data: the server, the replica's token, the
// park's number and a random secret, all plain tokens. Nothing in it is
// trusted: the replica checks that a park with that number and secret is
// open, for the same caller key, method and name.

// parkStatePrefix starts every requestState the gateway makes.
const parkStatePrefix = "mcpbus-park."

// ParkState is the requestState of park n, with secret, of the worker
// replica token of server.
func ParkState(server, workerToken string, n uint64, secret string) string {
	return parkStatePrefix + server + "." + workerToken + "." + uitoa(n) + "." + secret
}

// ParkRef is a parked call named by a request's requestState.
type ParkRef struct {
	Server, Token, N, Secret string
}

// Subject is where the retry of the parked call goes: a subject of the
// replica's server-to-client answers (bus permissions already let the
// router publish there and only that server's workers read it), tagged so
// the worker tells it from an answer.
func (p ParkRef) Subject() string { return serverRequestSubject(p.Server, p.Token, "p"+p.N) }

// ParkKey is the last subject token of a retry sent to Subject, and ok
// whether a token is one.
func ParkKey(token string) (n string, ok bool) {
	n, ok = strings.CutPrefix(token, "p")
	return n, ok && digits(n)
}

// ParkedCall reads the requestState of a request's params: ok when it is a
// gateway's park reference (every part a valid token, bounded as subjects
// are), so no client value can make a subject of its choosing.
func ParkedCall(params json.RawMessage) (ParkRef, bool) {
	if len(params) == 0 || !bytes.Contains(params, []byte(parkStatePrefix)) {
		return ParkRef{}, false
	}
	raw, found, _ := Field(params, "requestState")
	if !found {
		return ParkRef{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ParkRef{}, false
	}
	rest, found := strings.CutPrefix(s, parkStatePrefix)
	if !found {
		return ParkRef{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 || !ValidToken(parts[0]) || !ValidToken(parts[1]) || !digits(parts[2]) || !ValidToken(parts[3]) {
		return ParkRef{}, false
	}
	return ParkRef{Server: parts[0], Token: parts[1], N: parts[2], Secret: parts[3]}, true
}
