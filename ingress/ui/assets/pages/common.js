// What the page modules share: a DOM builder (createElement and textContent
// only, never HTML) and stylesheets loaded once, relative to this directory.

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** Adds the stylesheet at href (relative to pages/) once; resolves when it loaded. */
export function stylesheet(href) {
  const url = new URL(href, import.meta.url).href;
  for (const l of document.querySelectorAll('link[rel="stylesheet"]')) if (l.href === url) return Promise.resolve();
  const link = el('link', { rel: 'stylesheet', href: url });
  const done = new Promise((resolve) => {
    link.addEventListener('load', resolve, { once: true });
    link.addEventListener('error', resolve, { once: true });
    setTimeout(resolve, 3000);
  });
  document.head.append(link);
  return done;
}

const nf = new Intl.NumberFormat();

/** A whole number as the reader's locale writes it. */
export const fmtInt = (n) => nf.format(n || 0);
