// Client snippets: how Claude Desktop, Cursor, VS Code and the OpenAI
// Responses API reach this gateway, filled with this page's origin.
import { h, jsonBlock, replace, selectInput } from './dom.js';
import { announce } from './ui.js';

export function connectPage(root, ctx) {
  const url = `${location.origin}/mcp`;
  const box = h('div', {});
  const pick = selectInput('Server', { name: 'server', value: '', options: [['', 'All my servers (/mcp)']],
    hint: 'Or one server: /mcp/<name>' });
  const render = () => {
    const target = pick.input.value ? `${location.origin}/mcp/${encodeURIComponent(pick.input.value)}` : url;
    const name = pick.input.value || 'mcpbus';
    const auth = { Authorization: 'Bearer <your mcpbus key>' };
    const snippets = [
      ['Claude Desktop', 'claude_desktop_config.json (through the mcp-remote bridge, which Claude Desktop needs for remote servers)',
        { mcpServers: { [name]: { command: 'npx', args: ['-y', 'mcp-remote', target, '--header', 'Authorization:${MCPBUS_AUTH}'], env: { MCPBUS_AUTH: 'Bearer <your mcpbus key>' } } } }],
      ['Cursor', '~/.cursor/mcp.json', { mcpServers: { [name]: { url: target, headers: auth } } }],
      ['VS Code', '.vscode/mcp.json', { servers: { [name]: { type: 'http', url: target, headers: auth } } }],
      ['OpenAI Responses API', 'the tools of a POST /v1/responses body (the gateway must be reachable from OpenAI)',
        { model: 'gpt-4.1', tools: [{ type: 'mcp', server_label: name, server_url: target, headers: auth, require_approval: 'never' }], input: 'What tools do you have?' }],
    ];
    replace(box, snippets.map(([title, where, obj]) => {
      const text = JSON.stringify(obj, null, 2);
      return h('section', { class: 'snippet', 'aria-label': title },
        h('h2', {}, title), h('p', { class: 'hint' }, where),
        jsonBlock(obj, { 'aria-label': `${title} configuration` }),
        h('button', { type: 'button', class: 'secondary small', 'aria-label': `Copy the ${title} configuration`, onclick: async () => {
          try {
            await navigator.clipboard.writeText(text);
            announce(`${title} configuration copied.`);
          } catch {
            announce('The browser refused the clipboard: select the text and copy it.');
          }
        } }, 'Copy'));
    }));
  };
  pick.input.addEventListener('change', render);
  replace(root, h('h1', {}, 'Connect a client'),
    h('p', {}, 'Every client sends its key as ', h('code', {}, 'Authorization: Bearer <key>'), '. The MCP endpoint of this gateway is ', h('code', {}, url), '.'),
    pick.el, box);
  render();
  // Offer the servers this key may use.
  import('./admin.js').then(async ({ knownServers }) => {
    const names = await knownServers(ctx);
    for (const n of names) pick.input.append(h('option', { value: n }, `${n} (/mcp/${n})`));
  });
  return { refresh: () => {} };
}
