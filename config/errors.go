package config

import "strings"

// FieldError is one problem with one configuration value. Path names the value
// the way an operator finds it in the file, e.g. "mcp_servers.github.auth_value"
// or `mcp_servers["bad name"]`; an empty Path is a problem with the file itself.
//
// Msg never holds a credential or a value read from the environment: it says
// what is wrong and what is expected, not what was found.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one pass, in file order. Error prints one
// problem per line.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// FileError is what Parse and Load return when a file does not load: every
// problem found, each printed on its own line after the file's base name
// ("config.yaml: mcp_servers.github.url: must be an http(s) URL").
type FileError struct {
	Name string // base name of the file
	Errs Errors
}

func (e *FileError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = e.Name + ": " + fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.As access to each FieldError.
func (e *FileError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, fe := range e.Errs {
		out[i] = fe
	}
	return out
}

// problems collects FieldErrors and warnings while a file is read.
type problems struct {
	errs     Errors
	warnings []string
}

func (p *problems) errorf(path, msg string) {
	p.errs = append(p.errs, FieldError{Path: path, Msg: msg})
}

func (p *problems) add(es ...FieldError) {
	p.errs = append(p.errs, es...)
}

func (p *problems) warn(path, msg string) {
	p.warnings = append(p.warnings, FieldError{Path: path, Msg: msg}.Error())
}
