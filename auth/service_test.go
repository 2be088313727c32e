package auth_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/auth"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

func verify(t *testing.T, nc *nats.Conn, key string) (bus.Identity, *bus.Error) {
	t.Helper()
	req := bus.VerifyRequest{}
	if key != "" {
		req.KeyHash = bus.HashKey(key)
	}
	body, _ := json.Marshal(req)
	msg, err := nc.Request(bus.SubjectAuthVerify, body, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return bus.Identity{}, e
	}
	var id bus.Identity
	if err := json.Unmarshal(msg.Data, &id); err != nil {
		t.Fatal(err)
	}
	return id, nil
}

func TestVerifyMasterKey(t *testing.T) {
	nc := bustest.Conn(t, bustest.Server(t))
	svc, err := auth.Start(nc, auth.Options{MasterKey: "sk-master-123"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	id, e := verify(t, nc, "sk-master-123")
	if e != nil || !id.Admin || id.KeyID != "master" {
		t.Fatalf("master key: %+v %v", id, e)
	}
	for _, key := range []string{"", "sk-master-12", "sk-master-1234", "SK-MASTER-123"} {
		_, e := verify(t, nc, key)
		if e == nil || e.Kind != bus.ErrUnauthorized {
			t.Errorf("key %q: got %v, want unauthorized", key, e)
			continue
		}
		if key == "" && e.Message == "unauthorized: invalid API key" {
			t.Errorf("a missing key should say it is missing, got %q", e.Message)
		}
	}
}

func TestOpenModeIsAnonymousNotAdmin(t *testing.T) {
	nc := bustest.Conn(t, bustest.Server(t))
	svc, err := auth.Start(nc, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	id, e := verify(t, nc, "")
	if e != nil || id.KeyID != "anonymous" || id.Admin {
		t.Fatalf("open mode: %+v %v", id, e)
	}
}
