package gateway

import (
	"fmt"

	"github.com/mcpbus/mcpbus/a2a/agentworkers"
	"github.com/nats-io/nats.go"
)

// startAgents starts the workers of the config's A2A agents on a
// connection of their own (bus role agents).
func (g *Gateway) startAgents(o Options, conn func(string) (*nats.Conn, error)) error {
	nc, err := conn("mcpbus-agents")
	if err != nil {
		return err
	}
	s, err := agentworkers.Start(nc, o.Config.Agents, agentworkers.Options{Log: o.Log})
	if err != nil {
		return fmt.Errorf("agent workers: %w", err)
	}
	return g.add(s, nil)
}
