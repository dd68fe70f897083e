// The UI's entry point: the page router (location.hash), the token field and the node name.
import {call, setToken, token} from "./api.js";
import {el} from "./dom.js";
import * as cluster from "./cluster.js";
import * as kv from "./kv.js";
import * as service from "./service.js";
import * as services from "./services.js";

const PAGES = [
  [/^#\/services$/, "services", services.render],
  [/^#\/service\/([^/]+)$/, "services", service.render],
  [/^#\/cluster$/, "cluster", cluster.render],
  [/^#\/kv\/(.*)$/, "kv", kv.render],
];

let current = null;  // the AbortController of the page on screen: aborting it ends its watches

function show() {
  if (current) current.abort();
  current = new AbortController();
  const view = document.getElementById("view");
  view.replaceChildren();
  document.getElementById("banners").replaceChildren();
  const hash = location.hash || "#/services";
  for (const [pattern, nav, render] of PAGES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("active", link.dataset.page === nav);
    }
    let params;
    try {
      params = match.slice(1).map(decodeURIComponent);
    } catch {
      break;
    }
    render(view, params, current.signal);
    return;
  }
  view.append(el("h1", {}, "Not found"), el("p", {}, "No page at ", el("code", {}, hash), "."));
}

function showTokenState() {
  const state = document.getElementById("token-state");
  if (!token()) {
    state.textContent = "no token (anonymous)";
    return;
  }
  state.textContent = "token set";
  call("GET", "/v1/acl/token/self").then(
    ({data}) => { state.textContent = `token: ${data.description || data.accessor_id}`; },
    (err) => { state.textContent = err.status === 401 ? "token refused (401)" : "token set"; },
  );
}

function setUpToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    input.value = "";
    showTokenState();
    show();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    setToken("");
    showTokenState();
    show();
  });
  showTokenState();
}

call("GET", "/v1/health").then(({data}) => {
  document.getElementById("node-name").textContent = data.node;
  document.title = `raftreg · ${data.node}`;
}, () => {});
setUpToken();
window.addEventListener("hashchange", show);
show();
