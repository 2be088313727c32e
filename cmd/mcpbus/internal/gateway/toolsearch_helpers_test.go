package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstreams and helpers of the tool search tests (toolsearch_test.go).

// catalogTool is one tool of a catalog upstream.
type catalogTool struct{ name, description, props string }

// githubTools, jiraTools and slackTools are three servers' worth of tools,
// 100 in all, several of them about issues, creating and GitHub, so the
// ranking has something to tell apart.
func githubTools() []catalogTool {
	tools := []catalogTool{
		{"create_issue", "Create a new issue in a GitHub repository.", "owner,repo,title,body,labels"},
		{"update_issue", "Update an existing issue: title, body, state.", "owner,repo,issue_number,title,body,state"},
		{"get_issue", "Get one issue of a repository by its number.", "owner,repo,issue_number"},
		{"list_issues", "List the issues of a repository.", "owner,repo,state,labels"},
		{"add_issue_comment", "Add a comment to an issue.", "owner,repo,issue_number,body"},
		{"create_pull_request", "Open a new pull request from a branch.", "owner,repo,head,base,title"},
		{"create_branch", "Create a branch in a repository.", "owner,repo,branch,from"},
		{"create_repository", "Create a new repository for the user.", "name,private"},
		{"search_code", "Search code across repositories.", "query"},
		{"merge_pull_request", "Merge a pull request.", "owner,repo,pull_number"},
	}
	for i := len(tools); i < 40; i++ {
		tools = append(tools, catalogTool{fmt.Sprintf("workflow_step_%d", i), fmt.Sprintf("Run step %d of a CI workflow.", i), "owner,repo,run_id"})
	}
	return tools
}

func jiraTools() []catalogTool {
	tools := []catalogTool{
		{"create_ticket", "Create a Jira ticket in a project.", "project,summary,description"},
		{"transition_ticket", "Move a ticket to another status.", "key,status"},
		{"search_tickets", "Search tickets with JQL.", "jql"},
	}
	for i := len(tools); i < 30; i++ {
		tools = append(tools, catalogTool{fmt.Sprintf("board_report_%d", i), fmt.Sprintf("Report %d about a sprint board.", i), "board,sprint"})
	}
	return tools
}

func slackTools() []catalogTool {
	tools := []catalogTool{
		{"post_message", "Post a message to a Slack channel.", "channel,text"},
		{"list_channels", "List the channels of the workspace.", "limit"},
	}
	for i := len(tools); i < 30; i++ {
		tools = append(tools, catalogTool{fmt.Sprintf("emoji_pack_%d", i), fmt.Sprintf("Add emoji pack %d to the workspace.", i), "pack"})
	}
	return tools
}

// catalogUpstream serves a go-sdk server named name with tools, 20 a
// page. Every call answers "<name>/<tool>: <arguments as JSON>".
func catalogUpstream(t testing.TB, name string, tools []catalogTool) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{PageSize: 20})
	for _, tl := range tools {
		props := map[string]any{}
		for _, p := range splitComma(tl.props) {
			props[p] = map[string]any{"type": "string", "description": "the " + p}
		}
		schema, _ := json.Marshal(map[string]any{"type": "object", "properties": props})
		s.AddTool(&mcp.Tool{Name: tl.name, Description: tl.description, InputSchema: json.RawMessage(schema)},
			func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + "/" + req.Params.Name + ": " + string(req.Params.Arguments)}}}, nil
			})
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// searchGateway runs a gateway (separator "-") over github, jira, slack and
// secret (a server with its own create_issue), all by one master key.
func searchGateway(t *testing.T) *testGateway {
	t.Helper()
	yaml := fmt.Sprintf(`
general_settings: {master_key: %s, mcp_tool_prefix_separator: "-"}
mcp_servers:
  github: {url: %q}
  jira: {url: %q}
  slack: {url: %q}
  secret: {url: %q}
`, master, catalogUpstream(t, "github", githubTools()), catalogUpstream(t, "jira", jiraTools()),
		catalogUpstream(t, "slack", slackTools()),
		catalogUpstream(t, "secret", []catalogTool{{"create_issue", "Create a GitHub issue in the secret tracker.", "title"}}))
	return startGateway(t, yaml, nil)
}

// withSearch is h with the tool search header set to v.
func withSearch(h http.Header, v string) http.Header {
	h = h.Clone()
	h.Set("X-Mcpbus-Tool-Search", v)
	return h
}

// searchModeTools lists every tool through cs.
func searchModeTools(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	names, _, _ := walkTools(t, cs)
	return names
}

// searchResult is search_tools' structured content.
type searchResult struct {
	Tools []struct {
		Name        string
		Description string
		Score       float64
	}
	Total       int
	Unavailable []string
}

// searchTools calls search_tools through cs.
func searchTools(t *testing.T, cs *mcp.ClientSession, query string, limit int) (searchResult, string) {
	t.Helper()
	args := map[string]any{"query": query}
	if limit > 0 {
		args["limit"] = limit
	}
	res, err := cs.CallTool(callCtx(t), &mcp.CallToolParams{Name: "search_tools", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("search_tools %q: %v %+v", query, err, res)
	}
	var out searchResult
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("search_tools %q: structured content %s: %v", query, raw, err)
	}
	return out, res.Content[0].(*mcp.TextContent).Text
}

func (s searchResult) names() []string {
	var out []string
	for _, tl := range s.Tools {
		out = append(out, tl.Name)
	}
	return out
}
