package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

func TestProvisionOAuth2AWSStdioAndResilience(t *testing.T) {
	env := mapEnv(map[string]string{"CS": "client-secret", "AK": "AKIAEXAMPLE", "SK": "aws-secret", "TOK": "k-1"})
	up, err := Provision(bus.ServerSpec{Name: "o", URL: "https://o.example.com/mcp", AuthType: "oauth2",
		TokenURL: "https://auth.example.com/token", ClientID: "cid", ClientSecret: "os.environ/CS", Scopes: []string{"a", "b"},
		MaxConcurrentRequests: 4}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := &OAuth2{TokenURL: "https://auth.example.com/token", ClientID: "cid", ClientSecret: "client-secret", Scopes: []string{"a", "b"}}
	if !reflect.DeepEqual(up.OAuth2, want) || len(up.Header) != 0 {
		t.Errorf("oauth2: %+v, header %v", up.OAuth2, up.Header)
	}
	if up.MaxConcurrent != 4 || up.MaxQueued != DefaultMaxQueued || up.BreakerThreshold != DefaultBreakerThreshold || up.BreakerCooldown != DefaultBreakerCooldown {
		t.Errorf("resilience defaults: %d %d %d %s", up.MaxConcurrent, up.MaxQueued, up.BreakerThreshold, up.BreakerCooldown)
	}

	up, err = Provision(bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp", AuthType: "aws_sigv4",
		AWSAccessKeyID: "os.environ/AK", AWSSecretAccessKey: "os.environ/SK", AWSSessionToken: "os.environ/TOK",
		AWSRegionName: "eu-west-1", AWSServiceName: "execute-api", CircuitBreakerThreshold: 2, CircuitBreakerCooldown: "1.5"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if (*up.AWS != AWSSigV4{"AKIAEXAMPLE", "aws-secret", "k-1", "eu-west-1", "execute-api"}) {
		t.Errorf("aws: %+v", up.AWS)
	}
	if up.BreakerThreshold != 2 || up.BreakerCooldown != 1500*time.Millisecond {
		t.Errorf("breaker: %d %s", up.BreakerThreshold, up.BreakerCooldown)
	}

	up, err = Provision(bus.ServerSpec{Name: "s", Transport: "stdio", Command: "node", Args: []string{"server.js", "--x"},
		Env: map[string]string{"Z": "last", "API_KEY": "os.environ/CS"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if up.URL != nil || up.Command != "node" || !reflect.DeepEqual(up.Args, []string{"server.js", "--x"}) ||
		!reflect.DeepEqual(up.Env, []string{"API_KEY=client-secret", "Z=last"}) {
		t.Errorf("stdio: url %v command %q args %q env %q", up.URL, up.Command, up.Args, up.Env)
	}
	if s := up.String(); s == "" || strings.Contains(s, "client-secret") {
		t.Errorf("String() = %q", s)
	}
}
