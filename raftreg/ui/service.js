// One service: its instances (address, port, weight, tags, meta, status with the check's output or
// the operator's note, lease ttl and time left, create/modify index), with deregister and maintenance buttons
// that ask for a confirmation first. Kept fresh by a blocking query on /v1/services/{name}.
// A write the token may not make answers 403, shown next to the instance.
import {call, watch} from "./api.js";
import {badge, confirmInline, el, errorLine, seconds, tags} from "./dom.js";

const MAINTENANCE_NOTE = "maintenance (set in the web UI)";

export function render(view, [name], signal) {
  const problem = el("div", {class: "problem"});
  const info = el("p", {class: "muted", id: "service-index"});
  const body = el("tbody");
  const table = el("table", {id: "instances"},
    el("thead", {}, el("tr", {}, ["Instance", "Address", "Weight", "Tags", "Meta", "Status", "Lease", "Indexes", ""]
      .map((h) => el("th", {}, h)))),
    body);
  view.append(el("p", {class: "crumbs"}, el("a", {href: "#/services"}, "Services"), " / "),
    el("h1", {}, name), info, problem, table);
  const path = `/v1/services/${encodeURIComponent(name)}`;
  watch(path, ({data, index}) => {
    info.textContent = `${data.instances.length} instances · index ${index}`;
    body.replaceChildren(...data.instances.map((inst) => row(name, inst)));
    if (!data.instances.length) {
      body.append(el("tr", {}, el("td", {colspan: 9, class: "muted"}, "No instances (the page updates when one registers).")));
    }
    if (data.instances.some((inst) => inst.ttl)) showLeases(body, `${path}/leases`, signal);
  }, (err) => problem.replaceChildren(errorLine(err) || ""), signal);
}

// Time left on the ttl leases, as the answering node knows it when the page is drawn: heartbeats
// are not log entries, so they wake no blocking query; the figure is dated, not counted down.
function showLeases(body, path, signal) {
  call("GET", path, {signal}).then(({data}) => {
    const when = new Date().toLocaleTimeString();
    const how = data.exact ? "" : `, estimated by ${data.node}`;
    for (const [id, left] of Object.entries(data.leases)) {
      const cell = body.querySelector(`tr[data-instance="${CSS.escape(id)}"] td.lease`);
      if (cell) cell.append(el("div", {class: "left"}, `${seconds(left)} left`),
        el("div", {class: "muted"}, `at ${when}${how}`));
    }
  }, () => {});
}

function row(service, inst) {
  const actions = el("td", {class: "actions"});
  const outcome = el("div", {class: "outcome"});
  const base = `/v1/services/${encodeURIComponent(service)}/instances/${encodeURIComponent(inst.id)}`;
  const act = (method, path, body, done) => {
    outcome.replaceChildren();
    call(method, path, {body}).then(() => { outcome.replaceChildren(el("span", {class: "ok"}, done)); },
      (err) => { outcome.replaceChildren(errorLine(err)); });
  };
  const inMaintenance = inst.manual_status !== null && inst.manual_status !== undefined;
  const maintenance = el("button", {type: "button", class: "maintenance"},
    inMaintenance ? "End maintenance" : "Maintenance");
  maintenance.addEventListener("click", () => confirmInline(actions,
    inMaintenance ? `End maintenance of ${inst.id}?` : `Put ${inst.id} in maintenance (critical)?`,
    inMaintenance ? "End it" : "Yes, maintenance",
    () => act("PUT", `${base}/status`, inMaintenance ? {status: "passing"} : {status: "critical", note: MAINTENANCE_NOTE},
      inMaintenance ? "maintenance ended" : "in maintenance")));
  const deregister = el("button", {type: "button", class: "danger deregister"}, "Deregister");
  deregister.addEventListener("click", () => confirmInline(actions, `Deregister ${inst.id}?`, "Yes, deregister",
    () => act("DELETE", base, undefined, "deregistered")));
  actions.append(maintenance, " ", deregister);

  const meta = Object.entries(inst.meta || {});
  const note = inst.status_note
    ? el("div", {class: "note"}, inst.manual_status ? "note: " : "check: ", el("span", {class: "check-output"}, inst.status_note))
    : null;
  return el("tr", {dataset: {instance: inst.id}, class: inst.status},
    el("td", {class: "id"}, inst.id),
    el("td", {class: "address"}, `${inst.address}:${inst.port}`),
    el("td", {class: "num weight"}, inst.weight),
    el("td", {}, tags(inst.tags)),
    el("td", {class: "meta"}, meta.length
      ? el("dl", {}, meta.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))
      : el("span", {class: "muted"}, "—")),
    el("td", {class: "status"}, badge(inst.status), inst.check ? el("div", {class: "muted"}, checkText(inst.check)) : null, note),
    el("td", {class: "lease"}, inst.ttl ? `ttl ${seconds(inst.ttl)}` : el("span", {class: "muted"}, "none")),
    el("td", {class: "indexes"}, `created ${inst.create_index}`, el("br"), `modified ${inst.modify_index}`),
    el("td", {}, actions, outcome));
}

function checkText(check) {
  const target = check.http ? `http ${check.http}` : `tcp ${check.tcp}`;
  return `${target} every ${seconds(check.interval)}`;
}
