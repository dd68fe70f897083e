// The key/value page. "#/kv/<prefix>/" (or "#/kv/") browses one level of a prefix as a tree
// (?keys&separator=/) and creates keys (only if absent: ?cas=0); "#/kv/<key>" shows one key and
// edits or deletes it with ?cas=<the modify index the editor started from>, so an edit made
// against a value that changed meanwhile is refused and said so, never silently overwriting.
import {call, encodePath, watch} from "./api.js";
import {confirmInline, el, errorLine} from "./dom.js";

export function render(view, [path], signal) {
  if (path === "" || path.endsWith("/")) renderPrefix(view, path, signal);
  else renderKey(view, path, signal);
}

function crumbs(path) {
  const parts = path.split("/").filter((p, i, all) => p !== "" || i < all.length - 1);
  const out = [el("a", {href: "#/kv/"}, "root")];
  let acc = "";
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    acc += part + (last && !path.endsWith("/") ? "" : "/");
    out.push(" / ", last ? el("strong", {}, part) : el("a", {href: `#/kv/${encodePath(acc)}`}, part));
  });
  return el("p", {class: "crumbs"}, out);
}

function renderPrefix(view, prefix, signal) {
  const problem = el("div", {class: "problem"});
  const list = el("ul", {id: "kv-keys", class: "tree"});
  const name = el("input", {id: "kv-new-key", placeholder: "name", "aria-label": "New key name"});
  const value = el("textarea", {id: "kv-new-value", rows: 3, placeholder: "value", "aria-label": "New key value"});
  const outcome = el("div", {class: "outcome"});
  const create = el("form", {id: "kv-create", class: "editor"}, el("h2", {}, `New key under ${prefix || "the root"}`),
    el("label", {}, prefix, name), value, el("button", {type: "submit"}, "Create"), outcome);
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = prefix + name.value.trim();
    outcome.replaceChildren();
    call("PUT", `/v1/kv/${encodePath(key)}?cas=0`, {body: value.value}).then(({data}) => {
      if (data.ok) location.hash = `#/kv/${encodePath(key)}`;
      else outcome.replaceChildren(el("p", {class: "error"}, `${key} exists already: not overwritten.`));
    }, (err) => outcome.replaceChildren(errorLine(err)));
  });
  view.append(el("h1", {}, "Key/Value"), crumbs(prefix), problem, list, create);
  watch(`/v1/kv/${encodePath(prefix)}?keys&separator=/`, ({data}) => {
    const keys = data.keys || [];
    list.replaceChildren(...keys.map((key) => {
      const label = key.slice(prefix.length);
      const folder = key.endsWith("/");
      return el("li", {class: folder ? "folder" : "key"},
        el("a", {href: `#/kv/${encodePath(key)}`}, folder ? `▸ ${label}` : label));
    }));
    if (!keys.length) list.append(el("li", {class: "muted"}, "No keys here."));
  }, (err) => problem.replaceChildren(errorLine(err) || ""), signal);
}

function decode(base64) {
  const bytes = Uint8Array.from(atob(base64 || ""), (c) => c.charCodeAt(0));
  try {
    return {text: new TextDecoder("utf-8", {fatal: true}).decode(bytes), bytes: bytes.length};
  } catch {
    return {text: null, bytes: bytes.length};
  }
}

function renderKey(view, key, signal) {
  const problem = el("div", {class: "problem"});
  const details = el("dl", {id: "kv-details", class: "details"});
  const shown = el("pre", {id: "kv-value"});
  const editor = el("div", {id: "kv-editor"});
  const outcome = el("div", {id: "kv-outcome", class: "outcome"});
  view.append(el("h1", {}, "Key/Value"), crumbs(key), problem, details, shown, editor, outcome);
  const url = `/v1/kv/${encodePath(key)}`;
  let entry = null;  // the entry as last answered (null: absent)
  let editing = null;  // the modify index the open editor started from

  const drawEditor = () => {
    if (editing !== null) return;  // never replace what the user is typing
    const buttons = el("p", {class: "actions"});
    if (entry) {
      const value = decode(entry.value);
      const edit = el("button", {type: "button", id: "kv-edit"}, "Edit");
      edit.disabled = value.text === null;
      edit.addEventListener("click", () => openEditor(value.text ?? "", entry.modify_index));
      const del = el("button", {type: "button", class: "danger", id: "kv-delete"}, "Delete");
      const base = entry.modify_index;
      del.addEventListener("click", () => confirmInline(buttons, `Delete ${key}?`, "Yes, delete", () => {
        call("DELETE", `${url}?cas=${base}`).then(({data}) => {
          outcome.replaceChildren(data.deleted
            ? el("p", {class: "ok"}, `${key} deleted.`)
            : el("p", {class: "error", id: "kv-stale"}, `Refused: ${key} changed since modify index ${base}; not deleted.`));
        }, (err) => outcome.replaceChildren(errorLine(err)));
      }));
      buttons.append(edit, " ", del);
    }
    editor.replaceChildren(buttons);
  };

  const openEditor = (text, base) => {
    editing = base;
    outcome.replaceChildren();
    const area = el("textarea", {id: "kv-edit-value", rows: 8, "aria-label": "Value"});
    area.value = text;
    const save = el("button", {type: "submit", id: "kv-save"}, "Save");
    const cancel = el("button", {type: "button", id: "kv-cancel"}, "Cancel");
    const form = el("form", {class: "editor"}, el("p", {class: "muted"}, `Editing the version at modify index ${base}.`),
      area, el("p", {}, save, " ", cancel));
    cancel.addEventListener("click", () => { editing = null; drawEditor(); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      call("PUT", `${url}?cas=${base}`, {body: area.value}).then(({data}) => {
        if (data.ok) {
          editing = null;
          outcome.replaceChildren(el("p", {class: "ok"}, `Saved at index ${data.index}.`));
          drawEditor();
        } else {
          outcome.replaceChildren(stale(key, base));
        }
      }, (err) => outcome.replaceChildren(err.status === 409 ? stale(key, base) : errorLine(err)));
    });
    editor.replaceChildren(form);
  };

  watch(url, ({data}) => {
    entry = data;
    if (!entry) {
      details.replaceChildren();
      shown.textContent = "";
      shown.append(el("span", {class: "muted"}, `No key ${key} (the page updates if it is created).`));
    } else {
      const value = decode(entry.value);
      details.replaceChildren(...[["create index", entry.create_index], ["modify index", entry.modify_index],
        ["flags", entry.flags], ["lock index", entry.lock_index], ["session", entry.session || "—"],
        ["size", `${value.bytes} bytes`]].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      shown.textContent = value.text ?? `(binary value, ${value.bytes} bytes)`;
    }
    if (editing !== null && (!entry || entry.modify_index !== editing)) {
      outcome.replaceChildren(el("p", {class: "warning"},
        "This key changed since you started editing: saving will be refused (compare-and-set)."));
    }
    drawEditor();
  }, (err) => problem.replaceChildren(errorLine(err) || ""), signal);
}

function stale(key, base) {
  return el("p", {class: "error", id: "kv-stale", role: "alert"},
    `Refused: ${key} changed since you loaded it (your edit started from modify index ${base}). `
    + "Nothing was saved; the page shows the current value: edit again from it.");
}
