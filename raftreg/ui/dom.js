// Building DOM nodes from data. Every string given as a child becomes a text node, so a service
// name, tag, meta value or KV value is always shown as text, never parsed as HTML (no innerHTML).

/** el("td", {class: "num"}, "3"): an element; attributes are set with setAttribute, children
 * that are not Nodes become text nodes; null/undefined/false children are skipped. Keys starting
 * with "on" add an event listener. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A list of tags as small labels. */
export function tags(list) {
  return el("span", {class: "tags"}, (list || []).map((t) => el("span", {class: "tag"}, t)));
}

/** A status word as a coloured badge. */
export function badge(status) {
  return el("span", {class: `badge ${status}`}, status);
}

/** An error from the API as a paragraph that says what happened (status, code, message). */
export function errorLine(err) {
  if (!err) return null;
  const what = err.status ? `${err.status} ${err.code}` : "network error";
  return el("p", {class: "error", role: "alert"}, `${what}: ${err.message}`, err.status === 401 || err.status === 403
    ? " (enter an ACL token with the right permission above)" : "");
}

/** An inline confirmation: replaces `host`'s content with a question and two buttons. */
export function confirmInline(host, question, yesLabel, onYes) {
  const before = Array.from(host.childNodes);
  const restore = () => host.replaceChildren(...before);
  host.replaceChildren(el("span", {class: "confirm"}, question, " ",
    el("button", {type: "button", class: "danger confirm-yes", onclick: () => { restore(); onYes(); }}, yesLabel),
    " ",
    el("button", {type: "button", class: "confirm-no", onclick: restore}, "Cancel")));
}

/** Seconds as "1.5 s" / "2 m 5 s" / "1 h 0 m". */
export function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 60) return `${Math.round(value * 10) / 10} s`;
  const whole = Math.floor(value);
  if (whole < 3600) return `${Math.floor(whole / 60)} m ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} m`;
}
