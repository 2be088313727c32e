// The Network page (master key only): how the ingress classifies callers as
// internal or external (GET /ui/api/network), which route families it
// serves and opens to external callers, and a check of any address
// (?ip=). Other callers see the API's refusal.
//
// Contract: mount(root, ctx) -> Promise<unmount()>; see usage.js.
import { el, stylesheet } from './common.js';
let uid = 0;

function list(items, none) {
  if (!items || items.length === 0) return el('span', { class: 'n-meta', text: none });
  return el('ul', { class: 'n-list' }, ...items.map((i) => el('li', {}, el('code', { text: i }))));
}

/** "10.1.2.3 is internal (in 10.0.0.0/8)" as DOM. */
function classified(c) {
  const cls = c.class === 'internal' ? 'internal' : 'external';
  const out = [el('code', { text: c.address }), ' is ', el('strong', { class: `n-class-${cls}`, text: c.class })];
  if (c.range) out.push(' (in ', el('code', { text: c.range }), ')');
  else if (cls === 'external') out.push(' (in no internal range)');
  return out;
}

export async function mount(root, ctx) {
  stylesheet('./pages.css');
  const id = `n-page-${++uid}`;
  let alive = true;
  const page = el('section', { class: 'n-page', 'aria-labelledby': `${id}-h` }, el('h2', { id: `${id}-h`, text: 'Network' }));
  const alert = el('div', { class: 'n-alert', role: 'alert' });
  page.append(alert);
  root.append(page);

  let ans;
  try {
    ans = await ctx.api('/ui/api/network');
  } catch (err) {
    alert.textContent = err.message;
    return function unmount() {
      alive = false;
      root.replaceChildren();
    };
  }
  if (!alive) return () => {};

  const you = el('p', { class: 'n-you' }, 'You are classified as ', ...classified(ans.you).slice(2), ' (your address: ', el('code', { text: ans.you.address }), ').');

  const facts = el('dl', { class: 'n-facts' },
    el('dt', { text: 'Internal ranges' }), el('dd', {}, list(ans.internal_ranges, 'none')),
    el('dt', { text: 'Trusted proxies' }), el('dd', {}, list(ans.trusted_proxies, 'none: the connection’s address is the caller’s')),
    el('dt', { text: 'Use X-Forwarded-For' }), el('dd', { text: ans.use_x_forwarded_for ? 'yes' : 'no' }),
    el('dt', { text: 'Trusted X-Forwarded-For hops' }), el('dd', { text: String(ans.xff_num_trusted_hops ?? 0) }),
  );

  const served = new Set(ans.served_routes || []);
  const external = new Set(ans.external_routes || []);
  const families = [...new Set([...(ans.served_routes || []), ...(ans.external_routes || [])])];
  const routes = el('table', { class: 'n-table' },
    el('caption', { text: 'Route families' }),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col', text: 'Family' }),
      el('th', { scope: 'col', text: 'Served here' }),
      el('th', { scope: 'col', text: 'Open to external callers' }))),
    el('tbody', {}, ...families.map((f) => el('tr', {},
      el('th', { scope: 'row' }, el('code', { text: f })),
      el('td', { text: served.has(f) ? 'yes' : 'no' }),
      el('td', { text: external.has(f) ? 'yes' : 'no (internal callers only)' })))),
  );

  // Classify an address.
  const input = el('input', { id: `${id}-ip`, name: 'ip', type: 'text', autocomplete: 'off', spellcheck: 'false',
    inputmode: 'text', placeholder: 'e.g. 10.1.2.3 or 2001:db8::1', required: true });
  const result = el('p', { class: 'n-result', role: 'status', 'aria-live': 'polite' });
  const checkAlert = el('div', { class: 'n-alert', role: 'alert' });
  const form = el('form', { class: 'n-form', 'aria-label': 'Classify an address' },
    el('div', { class: 'n-field' }, el('label', { for: input.id, text: 'How would this address be classified?' }), input),
    el('button', { type: 'submit', text: 'Classify' }));
  let seq = 0;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ip = input.value.trim();
    if (!ip) return;
    const mine = ++seq;
    checkAlert.textContent = '';
    result.replaceChildren('Checking…');
    try {
      const a = await ctx.api(`/ui/api/network?ip=${encodeURIComponent(ip)}`);
      if (!alive || mine !== seq) return;
      result.replaceChildren(...(a.address ? classified(a.address) : ['No answer for this address.']));
    } catch (err) {
      if (!alive || mine !== seq) return;
      result.replaceChildren();
      checkAlert.textContent = err.message;
    }
  });

  page.append(you, el('h3', { text: 'Classification' }), facts, el('h3', { text: 'Routes' }), routes,
    el('h3', { text: 'Check an address' }), form, checkAlert, result);

  return function unmount() {
    alive = false;
    root.replaceChildren();
  };
}
