// Package llm holds mcpbus's LLM services on the bus (docs/LLM.md): the
// LLM router (llmrouter), which picks a deployment of a model group for
// each request, and the LLM workers (llmworkers), which hold the provider
// keys and speak the providers' wires.
package llm
