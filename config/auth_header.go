package config

import (
	"encoding/base64"
	"strings"
)

// AuthTypes are the auth_type values mcpbus supports, in LiteLLM's order.
var AuthTypes = []string{"none", "api_key", "bearer_token", "basic", "authorization", "token", "oauth2", "aws_sigv4"}

// headerAuthTypes put auth_value in a header (AuthHeader); oauth2 and
// aws_sigv4 are applied per request by the worker's HTTP transport.
var headerAuthTypes = map[string]bool{"api_key": true, "bearer_token": true, "basic": true, "authorization": true, "token": true}

// AuthError is a problem with an auth_type or auth_value. Its message never
// holds the value.
type AuthError struct {
	Field string // "auth_type" or "auth_value"
	Msg   string
}

func (e *AuthError) Error() string { return e.Field + ": " + e.Msg }

// AuthHeader returns the credential header sent upstream for an auth type and
// its (resolved) value:
//
//	none           nothing (name is "")
//	api_key        x-api-key: <value>
//	bearer_token   Authorization: Bearer <value>
//	basic          Authorization: Basic <base64(value)>; value is user:password,
//	               or is used as is when it already is base64 of user:password
//	authorization  Authorization: <value>
//	token          Authorization: Token <value>
//
// An empty authType means none. The error is an *AuthError.
func AuthHeader(authType, value string) (name, val string, err error) {
	switch authType {
	case "", "none", "oauth2", "aws_sigv4":
		return "", "", nil
	case "api_key", "bearer_token", "basic", "authorization", "token":
	default:
		return "", "", &AuthError{"auth_type", authTypeMessage()}
	}
	if value == "" {
		return "", "", &AuthError{"auth_value", "required when auth_type is " + authType}
	}
	if !validHeaderValue(value) {
		return "", "", &AuthError{"auth_value", "must not contain line breaks or other control characters"}
	}
	switch authType {
	case "api_key":
		return "x-api-key", value, nil
	case "bearer_token":
		return "Authorization", "Bearer " + value, nil
	case "basic":
		if dec, err := base64.StdEncoding.DecodeString(value); err == nil && strings.Contains(string(dec), ":") {
			return "Authorization", "Basic " + value, nil
		}
		if !strings.Contains(value, ":") {
			return "", "", &AuthError{"auth_value", "must be user:password, or its base64 encoding, when auth_type is basic"}
		}
		return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(value)), nil
	case "authorization":
		return "Authorization", value, nil
	default: // token
		return "Authorization", "Token " + value, nil
	}
}

// authTypeMessage explains an auth_type that is not one of AuthTypes.
func authTypeMessage() string {
	return "must be one of " + strings.Join(AuthTypes, ", ")
}

// validHeaderName reports whether s is an HTTP header field name (an RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isNameRune(rune(c)) || strings.IndexByte("!#$%&'*+.^`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value: no control
// characters other than tab, so no header can be injected through it.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
