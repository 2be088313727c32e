// Package a2a holds mcpbus's A2A agent services on the bus
// (docs/AGENTS.md): the agent workers (agentworkers), which hold each
// agent's credentials and relay JSON-RPC to it, and the translation between
// the protocol's two wires, 0.3 and 1.0 (wire).
package a2a
