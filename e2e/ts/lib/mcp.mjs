// Helpers for e2e tests that read MCP answers from the official SDK client.
import assert from 'node:assert/strict';

/** Every tool name a client is offered, following nextCursor. */
export async function toolNames(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor });
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return names;
}

/** The text content of a tool result, which must not be an error. */
export function text(result) {
  assert.equal(result.isError ?? false, false, `tool returned an error: ${JSON.stringify(result)}`);
  const t = result.content?.find((c) => c.type === 'text');
  assert.ok(t, `no text content in ${JSON.stringify(result)}`);
  return t.text;
}
