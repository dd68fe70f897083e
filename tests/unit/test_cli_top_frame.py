"""``raftreg top``'s frame (``build_frame``, ``known_addresses``) from synthetic ``/v1/cluster``
answers: names of down nodes, lag, writes/s between two samples, the leader of the newest term,
one row per node."""

from __future__ import annotations

from typing import Any

from raftreg.cli.top import build_frame, known_addresses

MEMBERS = [{"name": f"n{i}", "http": f"127.0.0.1:850{i}"} for i in (1, 2, 3)]


def view(node: str, state: str, term: int, commit: int, applied: int, **extra: Any) -> dict[str, Any]:
    return {"name": "prod", "node": node, "state": state, "term": term, "commit_index": commit,
            "applied_index": applied, "last_contact_ms": 5, "members": MEMBERS, **extra}


def test_frame_rows_lag_rates_and_down_nodes() -> None:
    leases = {"active": True, "leases": 7, "held": 2}
    first = {"127.0.0.1:8501": view("n1", "leader", 4, 100, 100, leases=leases, watches={"waiting": 1}),
             "127.0.0.1:8502": view("n2", "follower", 4, 98, 95, leases={"active": False, "leases": 0},
                                    watches={"waiting": 3}),
             "127.0.0.1:8503": None}
    f1 = build_frame(first, None, now=1000.0, monotonic_now=50.0, previous_at=None)
    rows = {r.node: r for r in f1.nodes}
    assert [r.node for r in f1.nodes] == ["n1", "n2", "n3"]
    assert (f1.cluster, f1.leader, f1.term, f1.leases, f1.watchers) == ("prod", "n1", 4, 7, 4)
    assert rows["n3"].state == "down" and rows["n3"].address == "127.0.0.1:8503" and rows["n3"].term is None
    assert (rows["n1"].lag, rows["n2"].lag) == (0, 5)
    assert rows["n1"].leases_held_back == 2 and rows["n2"].leases is None
    assert f1.writes_per_s is None  # one sample: no rate yet
    second = {**first, "127.0.0.1:8501": view("n1", "leader", 4, 150, 150, leases=leases)}
    f2 = build_frame(second, f1, now=1002.0, monotonic_now=52.0, previous_at=50.0)
    assert f2.writes_per_s == 25.0 and {r.node: r.writes_per_s for r in f2.nodes}["n2"] == 0.0
    doc = f2.to_json()
    assert doc["leader"] == "n1" and (doc["nodes"][2]["node"], doc["nodes"][2]["state"]) == ("n3", "down")


def test_newest_term_leads_and_a_node_reached_twice_is_one_row() -> None:
    answers = {"127.0.0.1:8501": view("n1", "leader", 3, 10, 10),  # deposed, not yet told
               "127.0.0.1:8502": view("n2", "leader", 5, 12, 12),
               "localhost:8502": view("n2", "leader", 5, 12, 12),
               "127.0.0.1:8503": None}
    frame = build_frame(answers, None, now=0.0, monotonic_now=0.0, previous_at=None)
    assert frame.leader == "n2" and frame.term == 5
    assert [(r.node, r.state) for r in frame.nodes] == [("n1", "leader"), ("n2", "leader"), ("n3", "down")]
    assert {r.node: r.lag for r in frame.nodes}["n1"] == 2
    nobody = build_frame({"10.0.0.9:8500": None}, None, now=0.0, monotonic_now=0.0, previous_at=None)
    assert nobody.leader == "" and nobody.term is None
    assert [(r.node, r.state) for r in nobody.nodes] == [("10.0.0.9:8500", "down")]


def test_known_addresses_adds_members_with_the_scheme_of_the_first() -> None:
    answers = {"https://127.0.0.1:8501": view("n1", "leader", 1, 1, 1)}
    assert known_addresses(["https://127.0.0.1:8501"], answers) == [
        "https://127.0.0.1:8501", "https://127.0.0.1:8502", "https://127.0.0.1:8503"]
    assert known_addresses(["127.0.0.1:8502"], {"x": None}) == ["127.0.0.1:8502"]
