// The Cluster page (master key only): the services on the bus as NATS micro
// discovery finds them (GET /ui/api/cluster), their replicas, versions and
// endpoints; each MCP server's worker replicas and calls in flight; and
// this ingress's bus connection. Refreshed every 5 s while mounted.
//
// Contract: mount(root, ctx) -> Promise<unmount()>; see usage.js.
import { el, stylesheet, fmtInt } from './common.js';
const REFRESH_MS = 5000;
let uid = 0;

const fmtMS = (n) => (n ? `${n < 10 ? n.toFixed(2) : Math.round(n)} ms` : '–');

function since(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime()) || t.getFullYear() < 2000) return '–';
  const s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
  const up = s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
  return `${t.toLocaleString()} (up ${up})`;
}

function th(text, num) {
  return el('th', { scope: 'col', class: num ? 'c-num' : undefined, text });
}

function serversTable(servers) {
  const names = Object.keys(servers || {}).sort();
  const body = names.map((name) => {
    const s = servers[name];
    const none = !s.replicas;
    return el('tr', { class: none ? 'c-row-flagged' : undefined },
      el('th', { scope: 'row' }, el('code', { text: name })),
      el('td', { class: 'c-num' }, none ? el('span', { class: 'c-flag', text: '0: no worker' }) : fmtInt(s.replicas)),
      el('td', { class: 'c-num', text: fmtInt(s.in_flight) }),
      el('td', { class: 'c-num', text: fmtInt(s.requests) }),
      el('td', { class: 'c-num', text: fmtInt(s.errors) }));
  });
  if (body.length === 0) body.push(el('tr', {}, el('td', { colspan: '5', text: 'No MCP servers.' })));
  return el('table', { class: 'c-table c-servers' },
    el('caption', { text: 'MCP servers and their workers' }),
    el('thead', {}, el('tr', {}, th('Server'), th('Worker replicas', true), th('Calls in flight', true), th('Requests', true), th('Errors', true))),
    el('tbody', {}, ...body));
}

function endpointList(eps) {
  return el('ul', { class: 'c-endpoints' }, ...eps.map((e) => {
    const parts = [`${fmtInt(e.requests)} requests`, `${fmtInt(e.errors)} errors`, `average ${fmtMS(e.average_ms)}`];
    if (e.in_flight !== undefined && e.in_flight !== null) parts.push(`${fmtInt(e.in_flight)} in flight`);
    return el('li', {}, el('strong', { text: e.name }), ' ', el('code', { class: 'c-mono', text: e.subject }),
      e.queue_group ? ` (queue ${e.queue_group})` : '', `: ${parts.join(', ')}`);
  }));
}

/**
 * An instance's endpoints: listed when few, else folded under their sum
 * (a <details> that stays open across refreshes: open holds its key).
 */
function endpoints(eps, key, open) {
  if (!eps || eps.length === 0) return el('span', { class: 'c-meta', text: 'none' });
  if (eps.length <= 3) return endpointList(eps);
  const req = eps.reduce((n, e) => n + (e.requests || 0), 0);
  const errs = eps.reduce((n, e) => n + (e.errors || 0), 0);
  const d = el('details', { open: open.has(key) },
    el('summary', { 'data-key': key, text: `${eps.length} endpoints: ${fmtInt(req)} requests, ${fmtInt(errs)} errors` }),
    endpointList(eps));
  d.addEventListener('toggle', () => (d.open ? open.add(key) : open.delete(key)));
  return d;
}

function metadata(md) {
  const keys = Object.keys(md || {}).sort();
  if (keys.length === 0) return '–';
  return keys.map((k) => `${k}=${md[k]}`).join(', ');
}

function service(svc, idBase, open) {
  const n = svc.instances.length;
  const mixed = (svc.versions || []).length > 1;
  const h = el('h4', { id: `${idBase}-h` }, el('code', { text: svc.name }), ` · ${n} ${n === 1 ? 'replica' : 'replicas'} · `,
    mixed ? el('span', { class: 'c-warn', text: `mixed versions: ${svc.versions.join(', ')}` })
      : `version ${(svc.versions || [])[0] || '–'}`);
  const rows = svc.instances.map((i) => el('tr', {},
    el('th', { scope: 'row' }, el('code', { class: 'c-mono', text: i.id })),
    el('td', {}, mixed ? el('span', { class: 'c-warn', text: i.version }) : i.version),
    el('td', { text: since(i.started) }),
    el('td', { class: 'c-mono', text: metadata(i.metadata) }),
    el('td', {}, endpoints(i.endpoints, `${svc.name}/${i.id}`, open))));
  return el('section', { class: 'c-service', 'aria-labelledby': h.id }, h,
    el('div', { class: 'c-scroll' }, el('table', { class: 'c-table' },
      el('caption', { text: `Instances of ${svc.name}` }),
      el('thead', {}, el('tr', {}, th('Instance'), th('Version'), th('Started'), th('Metadata'), th('Endpoints'))),
      el('tbody', {}, ...rows))));
}

export async function mount(root, ctx) {
  stylesheet('./pages.css');
  const id = `c-page-${++uid}`;
  let alive = true;
  let timer = null;
  let busy = false;
  const open = new Set(); // instances whose endpoints are unfolded
  const page = el('section', { class: 'c-page', 'aria-labelledby': `${id}-h` }, el('h2', { id: `${id}-h`, text: 'Cluster' }));
  const alert = el('div', { class: 'c-alert', role: 'alert' });
  const updated = el('span', { class: 'c-meta' });
  const pause = el('button', { type: 'button', 'aria-pressed': 'false', text: 'Pause refresh' });
  const refresh = el('button', { type: 'button', text: 'Refresh now' });
  const controls = el('div', { class: 'c-controls' }, refresh, pause, updated);
  const busBox = el('div', { class: 'c-bus' });
  const serversBox = el('div', { class: 'c-scroll' });
  const servicesBox = el('div', { class: 'c-services' });
  page.append(alert, controls,
    el('h3', { text: 'Bus' }), busBox,
    el('h3', { text: 'MCP servers' }), serversBox,
    el('h3', { text: 'Services' }), servicesBox);
  root.append(page);

  let last = '';
  function draw(ans) {
    // Unchanged: keep the DOM (and the reader's place) as it is.
    const json = JSON.stringify(ans);
    if (json === last) return;
    last = json;
    // A refresh rebuilds the tables: keep the keyboard focus on its summary.
    const focused = page.contains(document.activeElement) ? document.activeElement.getAttribute('data-key') : null;
    const known = ans.bus?.known || [];
    busBox.replaceChildren(el('p', {}, 'This ingress is connected to ',
      ans.bus?.connected ? el('code', { text: ans.bus.connected }) : el('span', { class: 'c-flag', text: 'no NATS server' }),
      known.length ? '; other servers in the cluster: ' : '; it knows no other server in the cluster.',
      ...known.flatMap((k, i) => [i ? ', ' : '', el('code', { text: k })]),
      known.length ? '.' : ''));
    serversBox.replaceChildren(serversTable(ans.servers));
    const services = ans.services || [];
    servicesBox.replaceChildren(...(services.length
      ? services.map((s, i) => service(s, `${id}-svc-${i}`, open))
      : [el('p', { class: 'c-meta', text: 'No services answered.' })]));
    if (focused) {
      for (const e of servicesBox.querySelectorAll('summary[data-key]')) if (e.getAttribute('data-key') === focused) e.focus();
    }
  }

  async function load() {
    if (busy) return;
    busy = true;
    try {
      const ans = await ctx.api('/ui/api/cluster');
      if (!alive) return;
      alert.textContent = '';
      draw(ans);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (alive) alert.textContent = err.message;
      return err;
    } finally {
      busy = false;
    }
  }

  const start = () => {
    clearInterval(timer);
    timer = setInterval(load, REFRESH_MS);
  };
  refresh.addEventListener('click', () => load());
  pause.addEventListener('click', () => {
    const paused = pause.getAttribute('aria-pressed') !== 'true';
    pause.setAttribute('aria-pressed', String(paused));
    if (paused) clearInterval(timer);
    else start();
  });

  const err = await load();
  // Refused (not the master key): no point asking again.
  if (!(err && /master key|unauthorized|sign in/i.test(err.message))) start();
  else controls.hidden = true;

  return function unmount() {
    alive = false;
    clearInterval(timer);
    root.replaceChildren();
  };
}
