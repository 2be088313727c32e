package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The requested schemas, sent verbatim in elicitation/create.
var (
	userSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "username": {"type": "string", "description": "User's response"},
    "email": {"type": "string", "description": "User's email address"}
  },
  "required": ["username", "email"]
}`)

	// defaultsSchema has a default for every primitive type (SEP-1034).
	defaultsSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "name": {"type": "string", "description": "User name", "default": "John Doe"},
    "age": {"type": "integer", "description": "User age", "default": 30},
    "score": {"type": "number", "description": "User score", "default": 95.5},
    "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
    "verified": {"type": "boolean", "description": "Verification status", "default": true}
  }
}`)

	// enumsSchema has each enum variant of SEP-1330.
	enumsSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {"type": "string", "oneOf": [
      {"const": "value1", "title": "First Option"},
      {"const": "value2", "title": "Second Option"},
      {"const": "value3", "title": "Third Option"}
    ]},
    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    "titledMulti": {"type": "array", "items": {"anyOf": [
      {"const": "value1", "title": "First Choice"},
      {"const": "value2", "title": "Second Choice"},
      {"const": "value3", "title": "Third Choice"}
    ]}}
  }
}`)
)

// elicit sends elicitation/create and renders the answer as text:
// "<prefix>: action=<action>, content=<content as JSON>".
func elicit(ctx context.Context, ss *mcp.ServerSession, tool, prefix, message string, schema json.RawMessage) (*mcp.CallToolResult, any, error) {
	if clientCaps(ss).Elicitation == nil {
		return nil, nil, errors.New(tool + ": the client did not declare the elicitation capability")
	}
	res, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: message, RequestedSchema: schema})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: elicitation/create failed: %w", tool, err)
	}
	content, err := json.Marshal(res.Content)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: encoding the answer: %w", tool, err)
	}
	return textResult(fmt.Sprintf("%s: action=%s, content=%s", prefix, res.Action, content)), nil, nil
}

func elicitationTool(ctx context.Context, req *mcp.CallToolRequest, in ElicitationInput) (*mcp.CallToolResult, any, error) {
	return elicit(ctx, req.Session, "test_elicitation", "User response", in.Message, userSchema)
}

func elicitDefaultsTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	return elicit(ctx, req.Session, "test_elicitation_sep1034_defaults", "Elicitation completed",
		"Please review and update the form fields with defaults", defaultsSchema)
}

func elicitEnumsTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	return elicit(ctx, req.Session, "test_elicitation_sep1330_enums", "Elicitation completed",
		"Please select options from the enum fields", enumsSchema)
}
