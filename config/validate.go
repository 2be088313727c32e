package config

import (
	"cmp"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/mcpbus/mcpbus/bus"
)

// checked is a server's resolved values in the shape validator checks. The
// yaml tags name fields in errors; the validate tags hold the rules, and
// message turns each failing tag into a sentence.
type checked struct {
	Name        string `yaml:"server_name" validate:"servername"`
	Alias       string `yaml:"alias" validate:"omitempty,servername"`
	URL         string `yaml:"url" validate:"required_unless=Transport stdio,omitempty,parseurl,httpscheme,urlhost"`
	Transport   string `yaml:"transport" validate:"oneof=http sse stdio"`
	Command     string `yaml:"command" validate:"required_if=Transport stdio"`
	SpecVersion string `yaml:"spec_version" validate:"omitempty,datetime=2006-01-02,specera"`
	AuthType    string `yaml:"auth_type" validate:"authtype"`
	AuthValue   string `yaml:"auth_value" validate:"authvalue"`
	// AuthValueGiven: the config wrote an auth_value (which may resolve to
	// ""); without one a header auth_type takes its credential from each
	// request (LiteLLM's way).
	AuthValueGiven bool `yaml:"-"`
	// BYOK is is_byok: each user brings the credential (bus/usercreds.go).
	BYOK bool `yaml:"is_byok" validate:"byok"`
	// The oauth2 fields: what each flow requires is checked by
	// checkOAuth2 (oauth2_flow.go).
	OAuth2Flow       string            `yaml:"oauth2_flow"`
	AuthorizationURL string            `yaml:"authorization_url" validate:"omitempty,parseurl,httpscheme,urlhost"`
	TokenURL         string            `yaml:"token_url" validate:"omitempty,parseurl,httpscheme,urlhost"`
	OAuth2Issuer     string            `yaml:"oauth2_issuer" validate:"omitempty,parseurl,httpscheme,urlhost"`
	OAuth2Resource   string            `yaml:"oauth2_resource"`
	ClientID         string            `yaml:"client_id" validate:"required_if=AuthType oauth2"`
	ClientSecret     string            `yaml:"client_secret"`
	AWSAccessKeyID   string            `yaml:"aws_access_key_id" validate:"required_if=AuthType aws_sigv4"`
	AWSSecret        string            `yaml:"aws_secret_access_key" validate:"required_if=AuthType aws_sigv4"`
	AWSRegion        string            `yaml:"aws_region_name" validate:"required_if=AuthType aws_sigv4"`
	AWSService       string            `yaml:"aws_service_name" validate:"required_if=AuthType aws_sigv4"`
	BreakerCooldown  time.Duration     `yaml:"circuit_breaker_cooldown" validate:"gt=0,lte=1h"`
	StaticHeaders    map[string]string `yaml:"static_headers" validate:"dive,keys,headername,endkeys,headervalue"`
	ExtraHeaders     []string          `yaml:"extra_headers" validate:"dive,headername"`
	AllowedTools     []string          `yaml:"allowed_tools" validate:"dive,required"`
	DisallowedTools  []string          `yaml:"disallowed_tools" validate:"dive,required"`
	Timeout          time.Duration     `yaml:"timeout" validate:"gt=0,lte=1h"`
	CanaryURL        string            `yaml:"canary_url" validate:"omitempty,parseurl,httpscheme,urlhost"`
	CanaryPercent    int               `yaml:"canary_percent" validate:"lte=100"`
	ToolPinning      string            `yaml:"tool_pinning" validate:"pinning"`
	Guardrails       []string          `yaml:"guardrails" validate:"dive,guardname"`
}

var validatorOnce = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		return name
	})
	str := func(fn func(string) bool) validator.Func {
		return func(fl validator.FieldLevel) bool { return fn(fl.Field().String()) }
	}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(v.RegisterValidation("servername", str(serverNameRE.MatchString)))
	must(v.RegisterValidation("headername", str(validHeaderName)))
	must(v.RegisterValidation("pinning", str(func(s string) bool { return s == "" || slices.Contains(bus.PinningModes, s) })))
	must(v.RegisterValidation("guardname", str(func(s string) bool { return bus.CheckGuardName(s) == nil })))
	must(v.RegisterValidation("headervalue", str(validHeaderValue)))
	must(v.RegisterValidation("authtype", str(func(s string) bool {
		for _, t := range AuthTypes {
			if s == t {
				return true
			}
		}
		return false
	})))
	must(v.RegisterValidation("authvalue", func(fl validator.FieldLevel) bool {
		p := fl.Parent()
		return !headerAuthTypes[p.FieldByName("AuthType").String()] || fl.Field().String() != "" || !p.FieldByName("AuthValueGiven").Bool()
	}))
	// A bring-your-own-key server takes its users' credentials in a
	// header: a header auth_type, no shared auth_value, an HTTP transport.
	must(v.RegisterValidation("byok", func(fl validator.FieldLevel) bool {
		p := fl.Parent()
		return !fl.Field().Bool() || headerAuthTypes[p.FieldByName("AuthType").String()] &&
			!p.FieldByName("AuthValueGiven").Bool() && p.FieldByName("Transport").String() != "stdio" &&
			p.FieldByName("Transport").String() != TransportConnector
	}))
	// A stateless-era revision is spoken to Streamable HTTP servers only:
	// mcpbus's HTTP+SSE and stdio clients keep sessions.
	must(v.RegisterValidation("specera", func(fl validator.FieldLevel) bool {
		return fl.Field().String() < bus.FirstModernVersion || fl.Parent().FieldByName("Transport").String() == "http"
	}))
	must(v.RegisterValidation("parseurl", str(func(s string) bool {
		_, err := url.Parse(s)
		return err == nil
	})))
	must(v.RegisterValidation("httpscheme", str(func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https")
	})))
	must(v.RegisterValidation("urlhost", str(func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && u.Hostname() != ""
	})))
	return v
})

// validate checks c and returns one FieldError per failing field, under base
// (mcp_servers.<name>). showURL allows quoting the URL, redacted, in URL
// errors; it is false when the URL came from the environment.
func validate(base string, c *checked, showURL bool) Errors {
	err := validatorOnce().Struct(c)
	if err == nil {
		return nil
	}
	ves, ok := err.(validator.ValidationErrors)
	if !ok {
		return Errors{{base, "cannot be checked: " + err.Error()}}
	}
	authTypeBad := false
	for _, fe := range ves {
		if fe.Field() == "auth_type" {
			authTypeBad = true
		}
	}
	var out Errors
	for _, fe := range ves {
		if fe.Field() == "auth_value" && authTypeBad {
			continue // auth_value means nothing until auth_type is right
		}
		path := base
		if fe.Field() != "server_name" {
			_, rest, _ := strings.Cut(fe.Namespace(), ".")
			path = base + "." + rest
		}
		out = append(out, FieldError{path, message(fe, c, showURL)})
	}
	return out
}

// message turns one failing rule into a sentence that never quotes a value,
// except the redacted URL when showURL allows it.
func message(fe validator.FieldError, c *checked, showURL bool) string {
	got := ""
	if showURL && fe.Field() == "url" {
		got = " (got " + `"` + bus.RedactURL(c.URL) + `")`
	}
	switch fe.Tag() {
	case "servername":
		if fe.Field() == "server_name" {
			return "server name " + serverNameRule
		}
		return serverNameRule
	case "required":
		if fe.Field() == "url" {
			return "required"
		}
		return "must not be empty"
	case "authvalue":
		return "is empty; with auth_type " + c.AuthType + " give a value, or leave auth_value out for each request to bring the credential (x-mcp-auth)"
	case "required_unless":
		return "required"
	case "required_if":
		if fe.Field() == "command" {
			return "required when transport is stdio"
		}
		return "required when auth_type is " + c.AuthType
	case "parseurl":
		return "must be a valid URL"
	case "httpscheme":
		return "must be an http(s) URL" + got
	case "urlhost":
		return "must include a host" + got
	case "oneof":
		return "must be http (Streamable HTTP), sse, stdio or connector (served by mcpbus connector)"
	case "authtype":
		return authTypeMessage()
	case "pinning":
		return pinningValues
	case "guardname":
		return "must name guardrails by guardrail_name: 1 to 64 characters of A-Z a-z 0-9 _ - (docs/GUARDS.md)"
	case "byok":
		return "each user brings their own credential, sent in the auth_type header: needs auth_type api_key, bearer_token, basic, authorization or token (got " +
			cmp.Or(c.AuthType, "none") + "), no auth_value (there is no shared one), and transport http or sse"
	case "datetime":
		return "must be an MCP protocol version such as " + DefaultSpecVersion
	case "specera":
		return "names a stateless-era revision (" + bus.FirstModernVersion + " or later), which mcpbus speaks to Streamable HTTP servers only (transport http); HTTP+SSE and stdio servers speak " + bus.LatestProtocolVersion + " or older"
	case "headername":
		return "must be an HTTP header name"
	case "headervalue":
		return "must not contain line breaks or other control characters"
	case "gt", "lte":
		if fe.Field() == "canary_percent" {
			return "must be a whole number from 0 to 100"
		}
		if fe.Field() == "circuit_breaker_cooldown" {
			return "must be more than 0 and at most 1h"
		}
		return timeoutRange
	}
	return "is not valid (" + fe.Tag() + ")"
}
