package llmrouter

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// respEvents sends a response's stream events to the POST's stream, each
// with its type and sequence number, as the Responses API streams them:
// response.created and .in_progress first, each output item as
// .output_item.added and .done (a message's text as one
// .output_text.delta between its content part's .added and .done), then
// response.completed, .incomplete or .failed.
type respEvents struct {
	nc   *nats.Conn
	to   string
	seq  int
	sent bool
}

func (s *respEvents) send(ev map[string]any) {
	ev["sequence_number"] = s.seq
	s.seq++
	b, _ := json.Marshal(ev)
	if s.nc.Publish(s.to, b) == nil {
		s.sent = true
	}
}

func (s *respEvents) created(resp map[string]any) {
	s.send(map[string]any{"type": "response.created", "response": resp})
	s.send(map[string]any{"type": "response.in_progress", "response": resp})
}

// item streams one output item at index i.
func (s *respEvents) item(i int, item map[string]any) {
	added := map[string]any{}
	for k, v := range item {
		added[k] = v
	}
	if item["type"] == "message" {
		added["status"], added["content"] = "in_progress", []any{}
	}
	s.send(map[string]any{"type": "response.output_item.added", "output_index": i, "item": added})
	if item["type"] == "message" {
		id := item["id"]
		for j, part := range item["content"].([]any) {
			p := part.(map[string]any)
			text, _ := p["text"].(string)
			s.send(map[string]any{"type": "response.content_part.added", "item_id": id, "output_index": i, "content_index": j,
				"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
			s.send(map[string]any{"type": "response.output_text.delta", "item_id": id, "output_index": i, "content_index": j, "delta": text})
			s.send(map[string]any{"type": "response.output_text.done", "item_id": id, "output_index": i, "content_index": j, "text": text})
			s.send(map[string]any{"type": "response.content_part.done", "item_id": id, "output_index": i, "content_index": j, "part": p})
		}
	}
	s.send(map[string]any{"type": "response.output_item.done", "output_index": i, "item": item})
}

func (s *respEvents) completed(resp map[string]any) {
	t := "response.completed"
	if resp["status"] == "incomplete" {
		t = "response.incomplete"
	}
	s.send(map[string]any{"type": t, "response": resp})
}

func (s *respEvents) failed(resp map[string]any) {
	s.send(map[string]any{"type": "response.failed", "response": resp})
}
