package bus

// The registry's write API (LiteLLM's /v1/mcp/server endpoints). The registry
// service does not check the caller: the ingress forwards only the master
// key's requests, as it does for the auth admin subjects.
//
// Create and update take the LiteLLM JSON body of POST / PUT /v1/mcp/server
// as it came (the registry reads it field by field, so errors name the field):
// the ServerSpec fields by their JSON names, with the server named by
// server_name or server_id, and on update an optional "revision". Every
// answer that carries a server is a ServerRecord: the record redacted, plus its
// revision. Errors: ErrBadRequest (a field, named as
// mcp_servers.<name>.<field>), ErrNotFound, ErrConflict (name taken, stale
// revision, lost race), ErrForbidden (a stdio server while
// mcp_allow_stdio_servers_from_api is off), ErrServiceUnavailable (no store).
// The subjects (SubjectRegistryCreate, ...) are in subjects.go.

// ServerRecord is a server as the registry shows it: always redacted
// (ServerSpec.Redacted), with ServerID (LiteLLM's name for the id, here the
// server name) and the KV revision to send back for an optimistic update.
// SubjectRegistryGet answers one, SubjectRegistryList a list sorted by name.
type ServerRecord struct {
	ServerID string `json:"server_id"`
	ServerSpec
	// Revision is the record's revision in BucketServers; 0 when the answer
	// came from a cache that does not know it.
	Revision uint64 `json:"revision,omitempty"`
}

// NewServerRecord redacts s for an answer.
func NewServerRecord(s ServerSpec, revision uint64) ServerRecord {
	return ServerRecord{ServerID: s.Name, ServerSpec: s.Redacted(), Revision: revision}
}

// ServerRef names one server for delete (and, as LookupRequest's superset,
// for get). Revision, if set, must be the current one (else ErrConflict).
type ServerRef struct {
	Name     string  `json:"name"`
	Revision *uint64 `json:"revision,omitempty"`
}

// DeleteServerReply answers SubjectRegistryDelete.
type DeleteServerReply struct {
	ServerID string `json:"server_id"`
	Deleted  bool   `json:"deleted"`
}
