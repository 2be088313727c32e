// Package bus is the wire contract between mcpbus's services, and the few
// helpers every service needs to keep it. The services (ingress, auth,
// registry, router, toolworkers) import bus and never each other, so
// everything one of them sends another is defined here:
//
//   - Subjects (subjects.go, keys.go, registry_api.go, stream.go, usage.go):
//     where each request, notification and event goes, and the buckets and
//     streams that hold state (BucketSessions, StreamUsage, ...).
//   - The envelope (envelope.go, limits.go): the NATS headers a request
//     carries besides its JSON-RPC body (caller, IP class, session, server
//     selection, deadline), bounded and validated here, since everything in
//     them came from a client.
//   - JSON-RPC (jsonrpc.go, jsonscan.go, protocol.go): parsing, responses,
//     protocol versions.
//   - Errors (errors.go): the catalog, each code with its JSON-RPC code and
//     its HTTP status on the MCP and the REST surfaces; an Error keeps its
//     cause for the log and never sends it to the caller.
//   - Liveness (liveness*.go): how a sender learns within seconds that no
//     worker took a request or that the one running it died, and recalls an
//     answer lost as a connection moved.
//   - Server records (server.go, server_fields.go, servers.go, secrets.go,
//     resolve.go, forward.go): ServerSpec and its fields, its redaction and
//     sealed secrets, and which server a request means (looked up in a
//     ServerSource: the process's copy of the servers bucket,
//     internal/servercache).
//   - Bus security (natsauth.go, natsauth_roles.go, natsauth_grants.go):
//     the bus users, their roles and exactly what each may publish and
//     subscribe to.
//   - State (state.go, kvfollow.go, msgget.go, usage_stream.go,
//     usage_read.go): creating buckets and streams without lowering what an
//     operator raised, and reading them without a JetStream consumer.
//
// And the little every service needs to keep it: tracing propagation
// (tracing.go, carrier.go), log levels (loglevel.go), rate-limited warnings
// (ratelog.go). The process machinery is not part of the contract and lives
// in the internal module: the embedded NATS server and connections
// (internal/natsnode), the bounded worker pool (internal/pool), the copy of
// the servers bucket every service follows (internal/servercache), and the test
// helpers that start real NATS servers and clusters (internal/bustest).
//
// docs/ARCHITECTURE.md draws the same map from the request's side.
package bus
