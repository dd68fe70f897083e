// The cluster page: the members as the answering node sees them (role, reachability, match index,
// lag behind the leader's commit index), this node's term, commit/applied index and last contact,
// the leader highlighted; banners when there is no leader, when the mass-expiry guard holds
// instances, and when this node's ACL settings disagree with the leader's. Kept fresh by a
// blocking query on /v1/cluster (answered when an entry applies or the role, leader (or whether it
// is usable), term or connected peers change, or after `wait`, so last contact and lag stay current).
import {watch} from "./api.js";
import {el, errorLine} from "./dom.js";

const WAIT = "10s";

export function render(view, _params, signal) {
  const problem = el("div", {class: "problem"});
  const summary = el("div", {id: "cluster-summary", class: "cards"});
  const body = el("tbody");
  const table = el("table", {id: "members"},
    el("thead", {}, el("tr", {}, ["Member", "Role", "HTTP", "Raft", "Match index", "Lag (entries)", ""]
      .map((h) => el("th", {}, h)))),
    body);
  view.append(el("h1", {}, "Cluster"), problem, summary, el("h2", {}, "Members"), table,
    el("p", {class: "muted"}, "Roles and match indexes are this node's view: the leader knows every member's match "
      + "index; a follower knows only whether it is connected to each peer."));
  const banners = document.getElementById("banners");

  watch("/v1/cluster", ({data}) => {
    banners.replaceChildren(...bannersFor(data));
    summary.replaceChildren(
      card("This node", data.node, data.state),
      card("Leader", data.leader || "none", data.leader === data.node ? "this node" : "", "leader-name"),
      card("Term", data.term),
      card("Commit index", data.commit_index),
      card("Applied index", data.applied_index),
      card("Last contact", data.state === "leader" ? "— (leader)" : `${data.last_contact_ms} ms`),
      card("Cluster", data.name));
    body.replaceChildren(...data.members.map((m) => memberRow(data, m)));
  }, (err) => problem.replaceChildren(errorLine(err) || ""), signal, WAIT);
}

function card(label, value, detail, id) {
  return el("div", {class: "card", id}, el("div", {class: "label"}, label), el("div", {class: "value"}, value),
    detail ? el("div", {class: "muted"}, detail) : null);
}

function memberRow(info, m) {
  const isLeader = m.name === info.leader;
  const isSelf = m.name === info.node;
  let lag = "—";
  if (info.state === "leader" && m.match_index !== null && m.match_index !== undefined) {
    lag = Math.max(0, info.commit_index - m.match_index);
  } else if (isSelf && info.leader_commit_index !== null && info.leader_commit_index !== undefined) {
    lag = Math.max(0, info.leader_commit_index - info.applied_index);
  }
  return el("tr", {dataset: {member: m.name}, class: [isLeader ? "leader" : "", isSelf ? "self" : ""].join(" ").trim()},
    el("td", {class: "name"}, m.name, isSelf ? el("span", {class: "you"}, " (you are here)") : null),
    el("td", {class: `role ${m.status}`}, isLeader ? "★ leader" : m.status),
    el("td", {}, m.http), el("td", {}, m.raft),
    el("td", {class: "num"}, m.match_index ?? "—"),
    el("td", {class: "num lag"}, lag),
    el("td", {}, isSelf ? null : el("a", {href: `${location.protocol}//${m.http}/ui/#/cluster`}, "open its UI")));
}

function bannersFor(info) {
  const out = [];
  if (!info.leader || info.leader_usable === false) {
    const last = info.leader ? ` (it last heard from ${info.leader} ${info.last_contact_ms} ms ago)` : "";
    out.push(el("div", {class: "banner critical", id: "no-leader"},
      `No leader: node ${info.node} (term ${info.term}, ${info.state}) knows no leader it can reach${last}. `
      + "Writes are refused until an election completes; reads may be stale."));
  }
  const leases = info.leases || {};
  if (leases.throttled) {
    out.push(el("div", {class: "banner warning", id: "guard"},
      `Mass-expiry guard on: ${leases.held} overdue instances are held back (of ${leases.leases} leases). `
      + "Many leases ran out at once, which looks like a network problem rather than dead instances, "
      + "so expiries are throttled (as Eureka's self-preservation)."));
  } else if (info.state !== "leader" && info.leader) {
    out.push(el("p", {class: "muted", id: "guard-elsewhere"},
      `Leases and the mass-expiry guard are held by the leader (${info.leader}): open its UI to see the guard's state.`));
  }
  if (info.acl_conflict) {
    out.push(el("div", {class: "banner critical", id: "acl-conflict"}, `ACL settings conflict: ${info.acl_conflict}`));
  }
  return out;
}
