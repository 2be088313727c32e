package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// What durable tool calls (docs/TASKS.md) cost: a plain tools/call with
// tasks off and on the same call to a server with tasks on, sent without
// params.task (these two must be equal: nothing of tasks is on that
// path), and a task's round trip (tools/call with params.task, then
// tasks/result until the stored result comes back).

// benchTasksGateway is benchSetup's gateway in front of the demo upstream,
// its server's line extended by extra (", tasks: [\"*\"]").
func benchTasksGateway(b *testing.B, extra string) *Gateway {
	b.Helper()
	up := httptest.NewServer(benchDemo)
	b.Cleanup(up.Close)
	return benchGateway(b, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q%s}\n", master, up.URL+"/mcp", extra), nil, false)
}

func BenchmarkToolsCallTasksOff(b *testing.B) {
	g := benchTasksGateway(b, "")
	benchCalls(b, g.URL()+"/mcp/demo", "Bearer "+master)
}

func BenchmarkToolsCallTasksOnNotAsked(b *testing.B) {
	g := benchTasksGateway(b, `, tasks: ["*"]`)
	benchCalls(b, g.URL()+"/mcp/demo", "Bearer "+master)
}

// One task: create (stored as working, answered at once), the call on the
// worker, the outcome stored, tasks/result reading it back.
func BenchmarkTaskCreateAndResult(b *testing.B) {
	g := benchTasksGateway(b, `, tasks: ["*"], task_max_open_per_key: 1000`)
	url, auth := g.URL()+"/mcp/demo", "Bearer "+master
	c := benchClient()
	sid, err := benchSession(c, url, auth)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	task := func() error {
		id := strconv.FormatInt(benchID.Add(1), 10)
		body := []byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m` + id + `"},"task":{"ttl":60000}}}`)
		st, _, err := benchPost(c, url, auth, sid, body, &buf)
		if err != nil {
			return err
		}
		i := bytes.Index(buf.Bytes(), []byte(`"taskId":"`))
		if st != http.StatusOK || i < 0 {
			return fmt.Errorf("tools/call as a task: HTTP %d: %s", st, buf.Bytes())
		}
		rest := buf.Bytes()[i+len(`"taskId":"`):]
		taskID := string(rest[:bytes.IndexByte(rest, '"')])
		st, _, err = benchPost(c, url, auth, sid, []byte(`{"jsonrpc":"2.0","id":0,"method":"tasks/result","params":{"taskId":"`+taskID+`"}}`), &buf)
		if err != nil {
			return err
		}
		if st != http.StatusOK || !bytes.Contains(buf.Bytes(), []byte(`"text":"m`+id+`"`)) {
			return fmt.Errorf("tasks/result: HTTP %d: %s", st, buf.Bytes())
		}
		return nil
	}
	if err := task(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := task(); err != nil {
			b.Fatal(err)
		}
	}
}
