package llmworkers

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

const providerKey = "sk-provider-secret-abcdef123456"

// A provider's error answers become the gateway's errors with the status
// class the caller can act on, and the provider key never comes back, even
// when the provider quotes it.
func TestProviderErrorsAreMappedAndScrubbed(t *testing.T) {
	cases := []struct {
		status  int
		body    string
		header  http.Header
		want    bus.Kind
		retryIn time.Duration
		says    string
	}{
		{400, `{"error":{"message":"This model's maximum context length is 8 tokens","code":"context_length_exceeded"}}`, nil, bus.ErrContextLength, 0, "context window"},
		{400, `{"error":{"message":"temperature: must be at most 2, got 9"}}`, nil, bus.ErrProviderRejected, 0, "temperature: must be at most 2"},
		{401, `{"error":{"message":"Incorrect API key provided: ` + providerKey + `"}}`, nil, bus.ErrUpstreamAuth, 0, "credentials"},
		{404, `{"error":{"message":"no such model"}}`, nil, bus.ErrProvider, 0, "litellm_params.model"},
		{429, `{"error":{"message":"slow down, ` + providerKey + `"}}`, http.Header{"Retry-After": {"7"}}, bus.ErrRateLimited, 7 * time.Second, "slow down"},
		{500, `oops`, nil, bus.ErrProvider, 0, "status 500"},
		{504, ``, nil, bus.ErrUpstreamTimeout, 0, "timed out"},
	}
	for _, c := range cases {
		provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+providerKey {
				t.Errorf("provider got Authorization %q", r.Header.Get("Authorization"))
			}
			for k, v := range c.header {
				w.Header()[k] = v
			}
			w.WriteHeader(c.status)
			_, _ = io.WriteString(w, c.body)
		}))
		resp := ask(t, config.Model{Name: "m", ID: "d1", Provider: "openai", Upstream: "x", APIKey: providerKey, APIBase: provider.URL}, `{"model":"m","messages":[]}`)
		provider.Close()
		e := bus.ReplyError(resp)
		if e == nil || e.Kind != c.want || e.RetryAfter != c.retryIn || !strings.Contains(e.Message, c.says) {
			t.Errorf("status %d: %+v, want %s saying %q (retry in %s)", c.status, e, c.want.Code, c.says, c.retryIn)
			continue
		}
		if strings.Contains(e.Message, providerKey) || strings.Contains(string(resp.Data), providerKey) {
			t.Errorf("status %d: the provider key came back: %s", c.status, e.Message)
		}
		if resp.Header.Get(bus.HeaderLLMDeployment) != "d1" {
			t.Errorf("status %d: the answer does not name its deployment", c.status)
		}
	}
}

// The worker sets the model the deployment names, whatever the caller's
// body says, and a success passes the provider's answer on.
func TestWorkerSetsTheDeploymentsModel(t *testing.T) {
	var got string
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[]}`)
	}))
	defer provider.Close()
	resp := ask(t, config.Model{Name: "group", ID: "d2", Provider: "hosted_vllm", Upstream: "llama-3", APIBase: provider.URL + "/v1"}, `{"model":"group","messages":[],"temperature":0.5}`)
	if e := bus.ReplyError(resp); e != nil {
		t.Fatal(e)
	}
	if !strings.Contains(got, `"model":"llama-3"`) || !strings.Contains(got, `"temperature":0.5`) || string(resp.Data) != `{"id":"x","object":"chat.completion","choices":[]}` {
		t.Fatalf("provider got %s; answer %s", got, resp.Data)
	}
}

// ask starts a worker for m on a real embedded NATS server and sends it
// one chat request as the LLM router would.
func ask(t *testing.T, m config.Model, body string) *nats.Msg {
	t.Helper()
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	s, err := Start(nc, []config.Model{m}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop() }()
	msg := &nats.Msg{Subject: bus.LLMDeploymentRPC(m.ID), Data: []byte(body), Header: bustest.InternalCaller()}
	msg.Header.Set(bus.HeaderLLMOp, bus.LLMOpChat)
	msg.Header.Set(bus.HeaderLLMModel, m.Name)
	resp, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
