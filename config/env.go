package config

import "strings"

// LookupEnv reads one environment variable; os.LookupEnv is the usual one.
type LookupEnv func(name string) (string, bool)

// EnvPrefix marks a value read from the environment at load, as in LiteLLM:
// "os.environ/GITHUB_TOKEN" is the value of GITHUB_TOKEN.
const EnvPrefix = "os.environ/"

// EnvRef reports whether s is an environment reference and which variable it names.
func EnvRef(s string) (name string, ok bool) {
	return strings.CutPrefix(s, EnvPrefix)
}

// resolve returns s, or the variable s refers to. The error names path and the
// variable, never a value.
func resolve(path, s string, env LookupEnv) (string, *FieldError) {
	name, ok := EnvRef(s)
	if !ok {
		return s, nil
	}
	if name == "" {
		return "", &FieldError{Path: path, Msg: "environment reference " + EnvPrefix + " names no variable"}
	}
	v, set := env(name)
	if !set {
		return "", &FieldError{Path: path, Msg: "environment variable " + name + " is not set"}
	}
	return v, nil
}

// noEnv is an empty environment, used when a caller passes a nil LookupEnv.
func noEnv(string) (string, bool) { return "", false }
