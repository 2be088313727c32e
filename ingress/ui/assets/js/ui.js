// Shared page furniture: the alert region, the status line, dialogs,
// confirmations.
import { h, replace } from './dom.js';

const alertEl = () => document.getElementById('alert');

/** Shows an error (an APIError's message) in the role="alert" region. */
export function showError(err, context) {
  const el = alertEl();
  const msg = err && err.message ? err.message : String(err);
  replace(el, h('strong', {}, context ? `${context}: ` : 'Error: '), msg,
    h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss the error', onclick: clearError }, '×'));
  el.hidden = false;
}

export function clearError() {
  const el = alertEl();
  el.hidden = true;
  el.replaceChildren();
}

/** Announces a short message to screen readers and shows it as a toast. */
export function announce(text) {
  const st = document.getElementById('status');
  st.textContent = text;
}

/** Runs fn, showing its error in the alert region; answers its result or undefined. */
export async function attempt(fn, context) {
  try {
    const out = await fn();
    return out;
  } catch (err) {
    showError(err, context);
    return undefined;
  }
}

/**
 * A modal dialog (<dialog> with showModal: focus stays inside, Escape
 * closes). content is built by build(close); closed when done.
 */
export function openDialog(title, build, { wide = false } = {}) {
  const titleID = `dlg-${Math.random().toString(36).slice(2)}`;
  const dlg = h('dialog', { class: wide ? 'wide' : '', 'aria-labelledby': titleID });
  const close = () => {
    dlg.close();
  };
  // Focus goes back to what opened the dialog, or, if a refresh replaced
  // it meanwhile, to the page's heading: never lost on <body>.
  const opener = document.activeElement;
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (opener && opener.isConnected && opener !== document.body) opener.focus();
    else {
      const h1 = document.querySelector('main h1');
      if (h1) {
        h1.tabIndex = -1;
        h1.focus();
      }
    }
  });
  replace(dlg, h('h2', { id: titleID }, title), build(close));
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector('input:not([type=hidden]):not([readonly]), select, textarea, button:not(.close)');
  if (first) first.focus();
  return dlg;
}

/** Asks to confirm; resolves true or false. */
export function confirmDialog(title, text, action = 'Delete') {
  return new Promise((resolve) => {
    let answered = false;
    const dlg = openDialog(title, (close) => h('div', {},
      h('p', {}, text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'danger', onclick: () => { answered = true; close(); resolve(true); } }, action),
        h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Cancel'))));
    dlg.addEventListener('close', () => { if (!answered) resolve(false); });
    dlg.querySelector('button.secondary').focus();
  });
}

/** A form inside a dialog: fields, submit (async, may throw) and cancel. */
export function formDialog(title, { fields, submitLabel = 'Save', onSubmit, wide = false }) {
  return openDialog(title, (close) => {
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { novalidate: false },
      fields, err,
      h('div', { class: 'actions' },
        h('button', { type: 'submit' }, submitLabel),
        h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Cancel')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('button[type=submit]');
      btn.disabled = true;
      err.hidden = true;
      try {
        await onSubmit();
        close();
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      } finally {
        btn.disabled = false;
      }
    });
    return form;
  }, { wide });
}
