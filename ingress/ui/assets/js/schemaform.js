// A form built from a tool's JSON Schema (inputSchema): strings, numbers,
// integers, booleans and enums as controls; objects, arrays and anything
// else as JSON in a textarea. values() reads it back as the arguments.
import { field, h, uid } from './dom.js';

function typeOf(schema) {
  let t = schema && schema.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null') || t[0];
  if (!t && schema && Array.isArray(schema.enum)) t = 'enum';
  return t || 'json';
}

/** Builds controls for schema's properties; returns { el, values() }. */
export function schemaForm(schema) {
  const props = (schema && typeof schema === 'object' && schema.properties) || {};
  const required = new Set((schema && Array.isArray(schema.required) && schema.required) || []);
  const readers = [];
  const rows = [];
  for (const [name, sub] of Object.entries(props)) {
    const s = sub && typeof sub === 'object' ? sub : {};
    const t = typeOf(s);
    const req = required.has(name);
    const label = req ? `${name} (required)` : name;
    const hint = [s.description, t === 'json' || t === 'object' || t === 'array' ? `JSON ${t === 'json' ? 'value' : t}` : null]
      .filter(Boolean).join(' · ') || undefined;
    let control;
    let read;
    if (Array.isArray(s.enum)) {
      control = h('select', { name, required: req },
        req ? null : h('option', { value: '' }, '(not set)'),
        s.enum.map((v, i) => h('option', { value: String(i) }, JSON.stringify(v))));
      read = () => (control.value === '' ? undefined : s.enum[Number(control.value)]);
    } else if (t === 'boolean') {
      control = h('select', { name }, h('option', { value: '' }, '(not set)'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      if (s.default !== undefined) control.value = String(s.default);
      read = () => (control.value === '' ? undefined : control.value === 'true');
    } else if (t === 'number' || t === 'integer') {
      control = h('input', { type: 'number', name, step: t === 'integer' ? '1' : 'any', required: req, inputmode: t === 'integer' ? 'numeric' : 'decimal' });
      read = () => {
        if (control.value === '') return undefined;
        const n = Number(control.value);
        if (!Number.isFinite(n) || (t === 'integer' && !Number.isInteger(n))) throw new Error(`${name}: expected ${t === 'integer' ? 'a whole number' : 'a number'}`);
        return n;
      };
    } else if (t === 'string') {
      control = h('input', { type: 'text', name, required: req, autocomplete: 'off' });
      read = () => (control.value === '' && !req ? undefined : control.value);
    } else {
      control = h('textarea', { name, rows: 3, spellcheck: 'false', required: req });
      read = () => {
        if (control.value.trim() === '') return undefined;
        try {
          return JSON.parse(control.value);
        } catch (err) {
          throw new Error(`${name}: not valid JSON (${err.message})`);
        }
      };
    }
    control.id = uid('arg');
    rows.push(field(label, control, hint));
    readers.push([name, read]);
  }
  const el = h('div', { class: 'schema-form' }, rows.length ? rows : h('p', { class: 'note' }, 'This tool takes no arguments.'));
  return {
    el,
    values() {
      const out = {};
      for (const [name, read] of readers) {
        const v = read();
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
  };
}
