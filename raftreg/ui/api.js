// The native JSON API (API.md), called from this origin. The ACL token is kept in sessionStorage
// (this tab only) and sent as the X-Raftreg-Token header, never in a URL.

const TOKEN_KEY = "raftreg.token";
const RETRY_AFTER_ERROR_MS = 2000;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(secret) {
  if (secret) sessionStorage.setItem(TOKEN_KEY, secret);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A non-2xx answer: status, the error envelope's code, message and field, and the index header. */
export class ApiError extends Error {
  constructor(status, code, message, field, index) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.index = index;
  }
}

/** One request. `body`: an object (sent as JSON) or a string (sent as is). Resolves to
 * {data, index, status}; rejects with ApiError (or the fetch's own error). */
export async function call(method, path, {body, signal} = {}) {
  const headers = {};
  const secret = token();
  if (secret) headers["X-Raftreg-Token"] = secret;
  if (body !== undefined && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const resp = await fetch(path, {method, headers, body, signal, cache: "no-store", credentials: "omit"});
  const index = Number(resp.headers.get("X-Raftreg-Index") || 0);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || resp.statusText, e.field, index);
  }
  return {data, index, status: resp.status};
}

/** Keep `path` fresh with blocking queries (API.md "Blocking queries"): the first request answers
 * at once, each next one names the last index and is held by the node until something under it
 * changes (or `wait` passes). `onData({data, index, status})` gets every answer, a 404 that
 * carries an index included (data null: e.g. a deleted key, still watched); `onError(err|null)`.
 * Stops when `signal` aborts. After an error it waits RETRY_AFTER_ERROR_MS before asking again. */
export function watch(path, onData, onError, signal, wait = "60s") {
  let index = 0;
  const loop = async () => {
    while (!signal.aborted) {
      const sep = path.includes("?") ? "&" : "?";
      const url = index > 0 ? `${path}${sep}index=${index}&wait=${wait}` : path;
      try {
        const answer = await call("GET", url, {signal});
        index = answer.index < index ? 0 : answer.index;  // an index that goes backwards: start over
        onError(null);
        onData(answer);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status === 404 && err.index > 0) {
          index = err.index < index ? 0 : err.index;
          onError(null);
          onData({data: null, index: err.index, status: 404});
          continue;
        }
        onError(err);
        await pause(RETRY_AFTER_ERROR_MS, signal);
      }
    }
  };
  loop();
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, {once: true});
  });
}

/** A path segment list encoded for a URL ("a b/c" -> "a%20b/c"): each segment percent-encoded. */
export function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}
