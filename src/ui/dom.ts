// A few lines instead of a framework: elements are made with h(), their text set as text (never
// parsed as HTML), and table rows kept by key so that a row whose record did not change keeps
// its element (a button under the pointer is not swapped out by the next poll).

type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((ev: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

export function $<T extends HTMLElement = HTMLElement>(selector: string): T {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`the page has no ${selector}`);
  return el;
}

/**
 * Shows items as the rows of a table body: one row per key, rebuilt only when its signature
 * (what the row shows) changed; with no items, one row saying so.
 */
export function syncRows<T>(tbody: HTMLTableSectionElement, items: T[], opts: { key: (t: T) => string; sig: (t: T) => string; row: (t: T) => HTMLTableRowElement; empty: string }): void {
  const old = new Map<string, HTMLTableRowElement>();
  for (const tr of Array.from(tbody.rows)) if (tr.dataset.key !== undefined) old.set(tr.dataset.key, tr);
  const rows = items.map((t) => {
    const key = opts.key(t);
    const sig = opts.sig(t);
    const kept = old.get(key);
    if (kept && kept.dataset.sig === sig) return kept;
    const tr = opts.row(t);
    tr.dataset.key = key;
    tr.dataset.sig = sig;
    return tr;
  });
  if (!rows.length) {
    const cols = tbody.closest('table')?.tHead?.rows[0]?.cells.length ?? 1;
    if (tbody.rows.length !== 1 || tbody.rows[0]!.dataset.key !== undefined) tbody.replaceChildren(h('tr', {}, h('td', { class: 'empty', colspan: cols }, opts.empty)));
    return;
  }
  const same = rows.length === tbody.rows.length && rows.every((r, i) => tbody.rows[i] === r);
  if (!same) tbody.replaceChildren(...rows);
}

/**
 * A button that asks again before it acts: the first click arms it ("Confirm?") for a few
 * seconds, the second runs the action. While the action runs it is disabled.
 */
export function confirmButton(label: string, confirm: string, action: () => Promise<void>): HTMLButtonElement {
  let timer = 0;
  const b = h('button', { type: 'button', class: 'danger' }, label);
  b.addEventListener('click', () => {
    if (!b.classList.contains('armed')) {
      b.classList.add('armed');
      b.textContent = confirm;
      timer = window.setTimeout(() => {
        b.classList.remove('armed');
        b.textContent = label;
      }, 4000);
      return;
    }
    window.clearTimeout(timer);
    b.classList.remove('armed');
    b.textContent = label;
    void busy(b, action);
  });
  return b;
}

/** Runs an action with its button disabled. */
export async function busy(b: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
  b.disabled = true;
  try {
    await action();
  } finally {
    b.disabled = false;
  }
}
