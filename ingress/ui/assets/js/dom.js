// A tiny DOM builder: elements from createElement and text from
// textContent only, never innerHTML, so names, descriptions and schemas
// that come from upstreams are always shown as text.

let nextID = 0;

/** A fresh element id (for label/for and aria-describedby pairs). */
export function uid(prefix = 'f') {
  nextID += 1;
  return `${prefix}-${nextID}`;
}

/**
 * h('button', {type: 'button', onclick: fn, class: 'x'}, 'text', child...)
 * Attributes: class, on<event> (a function), value/checked/disabled/hidden
 * (properties), anything else setAttribute (false/null/undefined: left out).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children: nodes, strings (as text), arrays of them; skips null. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces el's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * A labelled form control: {label, control, hint}. The label names the
 * control (for/id); the hint is tied to it with aria-describedby.
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('span', { class: 'hint', id: hid }, hint));
  }
  const cls = control.type === 'checkbox' ? 'field check' : 'field';
  return h('div', { class: cls }, control.type === 'checkbox' ? [parts[1], parts[0], parts.slice(2)] : parts);
}

/** A labelled text input. */
export function textInput(label, { name, value = '', type = 'text', hint, required, placeholder, autocomplete = 'off', ...rest } = {}) {
  const input = h('input', { type, name, value, required, placeholder, autocomplete, ...rest });
  return { input, el: field(label, input, hint) };
}

/** A labelled select of [value, text] options. */
export function selectInput(label, { name, options, value = '', hint }) {
  const sel = h('select', { name }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  sel.value = value;
  return { input: sel, el: field(label, sel, hint) };
}

/** A labelled checkbox. */
export function checkbox(label, { name, checked = false, hint } = {}) {
  const input = h('input', { type: 'checkbox', name, checked });
  return { input, el: field(label, input, hint) };
}

/** A labelled textarea. */
export function textArea(label, { name, value = '', rows = 3, hint, placeholder } = {}) {
  const input = h('textarea', { name, rows, placeholder, spellcheck: 'false' });
  input.value = value;
  return { input, el: field(label, input, hint) };
}

/** Splits "a, b\nc" into ["a", "b", "c"]. */
export function splitList(s) {
  return String(s || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

/** A pill: text with a class. */
export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}`.trim() }, text);
}

/** Pretty JSON text in a <pre> (textContent, never parsed as HTML). */
export function jsonBlock(value, attrs = {}) {
  return h('pre', { class: 'json', tabindex: '0', ...attrs }, JSON.stringify(value, null, 2));
}
