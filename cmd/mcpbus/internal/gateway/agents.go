package gateway

import (
	"fmt"

	"github.com/mcpbus/mcpbus/a2a/agentworkers"
	"github.com/nats-io/nats.go"
)

// startAgents starts the agent workers on a connection of their own (bus
// role agents): the config's A2A agents, and those of the agents bucket
// (the agent admin API's), which they follow.
func (g *Gateway) startAgents(o Options, conn func(string) (*nats.Conn, error)) error {
	nc, err := conn("mcpbus-agents")
	if err != nil {
		return err
	}
	s, err := agentworkers.Start(nc, o.Config.Agents, agentworkers.Options{Log: o.Log, Follow: true, Secrets: g.secrets, Env: o.Env})
	if err != nil {
		return fmt.Errorf("agent workers: %w", err)
	}
	g.agents = s
	return nil
}
