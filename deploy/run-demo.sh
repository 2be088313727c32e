#!/usr/bin/env bash
# `make run`: two demo upstream MCP servers and the gateway in front of them, on
# loopback. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MCPBUS_BIN:-bin/mcpbus}
export MCPBUS_MASTER_KEY=${MCPBUS_MASTER_KEY:-sk-mcpbus-local-demo}
export DEMO_UPSTREAM_KEY=${DEMO_UPSTREAM_KEY:-demo-upstream-secret}
export DEMO_B_UPSTREAM_KEY=${DEMO_B_UPSTREAM_KEY:-demo-b-upstream-secret}
export MCPBUS_DEMO_USAGE_PASSWORD=${MCPBUS_DEMO_USAGE_PASSWORD:-demo-usage-local-password}
PORT=${PORT:-4000}

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$BIN" demo-upstream --listen 127.0.0.1:3001 --name demo --require-header "x-api-key: $DEMO_UPSTREAM_KEY" &
pids+=($!)
"$BIN" demo-upstream --listen 127.0.0.1:3002 --name demo_b --require-header "Authorization: Bearer $DEMO_B_UPSTREAM_KEY" &
pids+=($!)

log=$(mktemp)
"$BIN" serve --config deploy/examples/config.yaml --listen "127.0.0.1:$PORT" --data ./data >"$log" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
if ! grep -q "listening on" "$log"; then echo "mcpbus did not start" >&2; exit 1; fi
rm -f "$log"
URL="http://127.0.0.1:$PORT"

cat <<MSG

mcpbus is running on $URL with three upstream servers: demo (HTTP), demo_b (HTTP), demo_stdio (stdio).
Try it (initialize, then call a tool):

  SID=\$(curl -si $URL/mcp/demo -H 'Authorization: Bearer $MCPBUS_MASTER_KEY' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' | awk 'tolower(\$1)=="mcp-session-id:"{print \$2}' | tr -d '\r')
  curl -s $URL/mcp/demo -H 'Authorization: Bearer $MCPBUS_MASTER_KEY' -H "Mcp-Session-Id: \$SID" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}'

All three servers as one: $URL/mcp (tools named demo__add, demo_b__echo, demo_stdio__slow, ...).

The admin UI: $URL/ui (sign in with $MCPBUS_MASTER_KEY).

Cursor (~/.cursor/mcp.json) or any client that speaks Streamable HTTP:

  {"mcpServers": {"mcpbus-demo": {"url": "$URL/mcp/demo", "headers": {"x-litellm-api-key": "Bearer $MCPBUS_MASTER_KEY"}}}}

Claude Desktop (claude_desktop_config.json, through the mcp-remote bridge):

  {"mcpServers": {"mcpbus-demo": {"command": "npx", "args": ["mcp-remote", "$URL/mcp/demo", "--header", "x-litellm-api-key: Bearer $MCPBUS_MASTER_KEY"]}}}

Follow the calls as they happen (the usage stream, read as the config's bus user demo-usage):

  MCPBUS_NATS_USER=demo-usage MCPBUS_NATS_PASSWORD=$MCPBUS_DEMO_USAGE_PASSWORD $BIN usage tail

Ctrl-C stops the gateway and the demo servers.
MSG
wait "${pids[2]}"
