package config

// CheckServerName returns nil if name may name a server, else the error a
// config file naming a server so gets (mcp_servers["bad name"]: server name
// must be ...). The registry API applies the same rule to names it is sent.
func CheckServerName(name string) error {
	if serverNameRE.MatchString(name) {
		return nil
	}
	return FieldError{Path: serverPath(name), Msg: "server name " + serverNameRule}
}
