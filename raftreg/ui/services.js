// The services page: every service with its tags, instance count and count per status, a filter
// box; kept fresh by a blocking query on /v1/services.
import {watch} from "./api.js";
import {el, errorLine, tags} from "./dom.js";

export function render(view, _params, signal) {
  const filter = el("input", {type: "search", id: "service-filter", placeholder: "Filter by name or tag",
                              "aria-label": "Filter services"});
  const problem = el("div", {class: "problem"});
  const info = el("p", {class: "muted", id: "services-index"});
  const body = el("tbody");
  const table = el("table", {id: "services"},
    el("thead", {}, el("tr", {}, ["Service", "Tags", "Instances", "Passing", "Warning", "Critical"]
      .map((h) => el("th", {}, h)))),
    body);
  view.append(el("h1", {}, "Services"), el("div", {class: "toolbar"}, filter, info), problem, table);
  let rows = [];

  const draw = () => {
    const wanted = filter.value.trim().toLowerCase();
    const shown = rows.filter((s) => !wanted || s.name.includes(wanted)
      || (s.tags || []).some((t) => t.toLowerCase().includes(wanted)));
    body.replaceChildren(...shown.map((s) => el("tr", {dataset: {service: s.name}},
      el("td", {class: "name"}, el("a", {href: `#/service/${encodeURIComponent(s.name)}`}, s.name)),
      el("td", {}, tags(s.tags)),
      el("td", {class: "num instances"}, s.instances),
      el("td", {class: "num passing"}, s.passing),
      el("td", {class: `num warning${s.warning ? " some" : ""}`}, s.warning ?? 0),
      el("td", {class: `num critical${s.critical ? " some" : ""}`}, s.critical ?? 0))));
    if (!shown.length) {
      body.append(el("tr", {}, el("td", {colspan: 6, class: "muted"},
        rows.length ? "No service matches the filter." : "No services registered.")));
    }
  };
  filter.addEventListener("input", draw);
  watch("/v1/services", ({data, index}) => {
    rows = data.services;
    info.textContent = `${rows.length} services · index ${index}`;
    draw();
  }, (err) => problem.replaceChildren(errorLine(err) || ""), signal);
}
