package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs the conformance scenarios read or subscribe to.
const (
	staticTextURI   = "test://static-text"
	staticBinaryURI = "test://static-binary"
	templateURI     = "test://template/{id}/data"
	watchedURI      = "test://watched-resource"

	staticText = "This is the content of the static text resource."
)

func (f *Fixture) addResources() {
	f.server.AddResource(&mcp.Resource{
		URI: staticTextURI, Name: "static-text", MIMEType: "text/plain",
		Description: "A static text resource.",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return contents(&mcp.ResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: staticText}), nil
	})
	f.server.AddResource(&mcp.Resource{
		URI: staticBinaryURI, Name: "static-binary", MIMEType: "image/png",
		Description: "A static binary resource (a 1x1 PNG).",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return contents(&mcp.ResourceContents{URI: req.Params.URI, MIMEType: "image/png", Blob: pngImage}), nil
	})
	f.server.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: templateURI, Name: "template-data", MIMEType: "application/json",
		Description: "JSON data for the id in the URI.",
	}, readTemplate)
	f.server.AddResource(&mcp.Resource{
		URI: watchedURI, Name: "watched-resource", MIMEType: "text/plain",
		Description: "A resource that changes over time; subscribe to be told.",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		text := fmt.Sprintf("Watched resource content, revision %d", f.watched.Load())
		return contents(&mcp.ResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: text}), nil
	})
}

func contents(c *mcp.ResourceContents) *mcp.ReadResourceResult {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{c}}
}

// readTemplate answers test://template/{id}/data with JSON naming the id.
// The go-sdk only routes URIs matching the template here.
func readTemplate(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, "test://template/")
	id, ok2 := strings.CutSuffix(id, "/data")
	if !ok || !ok2 || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	body, err := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
	if err != nil {
		return nil, err
	}
	return contents(&mcp.ResourceContents{URI: uri, MIMEType: "application/json", Text: string(body)}), nil
}

// known reports whether uri names one of the fixture's resources.
func known(uri string) bool {
	switch uri {
	case staticTextURI, staticBinaryURI, watchedURI:
		return true
	}
	rest, ok := strings.CutPrefix(uri, "test://template/")
	rest, ok2 := strings.CutSuffix(rest, "/data")
	return ok && ok2 && rest != "" && !strings.Contains(rest, "/")
}

// subscribe accepts subscriptions to the fixture's own resources; the go-sdk
// records them per session and sends resources/updated only to subscribers.
func (f *Fixture) subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	if !known(req.Params.URI) {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	return nil
}

func (f *Fixture) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	if !known(req.Params.URI) {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	return nil
}
