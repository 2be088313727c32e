package config

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// checkCanary checks what validate's per-field rules cannot: a canary fits
// the server's transport (a URL for http and sse, a command for stdio), and a
// percent has a canary to send calls to. r is the resolved record.
func checkCanary(base, transport string, r bus.ServerSpec) Errors {
	var errs Errors
	if transport == "stdio" && r.CanaryURL != "" {
		errs = append(errs, FieldError{base + ".canary_url", "a stdio server's canary is canary_command (with canary_args), not a URL"})
	}
	hasTarget := r.CanaryURL != "" || (transport == "stdio" && r.CanaryCommand != "")
	if r.CanaryPercent > 0 && !hasTarget {
		errs = append(errs, FieldError{base + ".canary_percent", "needs a canary: canary_url (canary_command for a stdio server)"})
	}
	return errs
}

// setCanary copies the checked canary of r into up.
func setCanary(up *Upstream, r bus.ServerSpec) {
	up.Drain = r.Drain
	up.CanaryPercent = r.CanaryPercent
	switch {
	case up.Transport == "stdio" && r.CanaryCommand != "":
		up.CanaryCommand = r.CanaryCommand
		up.CanaryArgs = r.CanaryArgs
	case up.Transport != "stdio" && r.CanaryURL != "":
		up.CanaryURL, _ = url.Parse(r.CanaryURL) // validated
	}
}

// HasCanary reports whether up has a canary upstream.
func (up *Upstream) HasCanary() bool { return up.CanaryURL != nil || up.CanaryCommand != "" }

// Canary is the server as its canary: up with the canary's URL (or command
// and arguments) in place of its own, every credential, header, limit and
// timeout kept (the canary is the same server). nil without a canary.
func (up *Upstream) Canary() *Upstream {
	if !up.HasCanary() {
		return nil
	}
	c := *up
	c.Header = up.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	if up.Transport == "stdio" {
		c.Command, c.Args = up.CanaryCommand, slices.Clone(up.CanaryArgs)
	} else {
		u := *up.CanaryURL
		c.URL = &u
	}
	c.CanaryURL, c.CanaryCommand, c.CanaryArgs, c.CanaryPercent = nil, "", nil, 0
	return &c
}
