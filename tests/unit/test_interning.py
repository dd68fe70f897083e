"""``raftreg.state.interning``: stored instances share their repetitive parts, within bounds."""

from __future__ import annotations

from raftreg.models import Instance
from raftreg.state import interning
from raftreg.state.interning import _Shared, shared_strings


def instance(i: int, **kw: object) -> Instance:
    fields: dict[str, object] = {"service": "web", "id": f"i{i}", "address": "10.1.2.3", "port": 80,
                                 "tags": ("a", "b"), "meta": {"zone": "z1", "payload": "p" * 300}}
    fields.update(kw)
    return Instance(**fields)  # type: ignore[arg-type]


def stored(i: int, **kw: object) -> Instance:
    # Copies of the values, as a decoder makes them, so that sharing cannot come from the literals.
    inst = instance(i, **kw)
    copy = Instance(service="".join(inst.service), id=inst.id, address="".join(inst.address), port=inst.port,
                    tags=tuple("".join(t) for t in inst.tags),
                    meta={"".join(k): "".join(v) for k, v in inst.meta.items()})
    return shared_strings(copy, create_index=i, modify_index=i, status="passing")


def test_equal_parts_of_two_instances_are_one_object() -> None:
    a, b = stored(1), stored(2)
    assert a.address is b.address and a.tags is b.tags and a.meta is b.meta and a.service is b.service
    assert (a.create_index, a.modify_index, b.create_index) == (1, 1, 2)
    assert a.meta == {"zone": "z1", "payload": "p" * 300} and a.tags == ("a", "b")


def test_empty_meta_and_tags_are_shared_too() -> None:
    a, b = stored(1, meta={}, tags=()), stored(2, meta={}, tags=())
    assert a.meta is b.meta and a.meta == {} and a.tags == () and b.tags == ()


def test_short_meta_values_are_shared_across_different_maps_and_long_ones_are_not_copied() -> None:
    a = stored(1, meta={"zone": "z9", "payload": "q" * 300})
    b = stored(2, meta={"zone": "z9", "other": "x"})
    assert a.meta["zone"] is b.meta["zone"]


def test_a_full_table_returns_new_values_as_they_are_and_keeps_what_it_holds() -> None:
    table: _Shared[str] = _Shared(2)
    first, second, third = "".join(["a", "1"]), "".join(["a", "2"]), "".join(["a", "3"])
    assert table.keep(first, first) is first and table.keep(second, second) is second
    assert table.keep(third, third) is third
    assert set(table.values) == {"a1", "a2"}  # no room for the third
    assert table.values.get("a1") is first


def test_the_module_tables_are_bounded() -> None:
    for table in (interning._strings, interning._tag_sets, interning._meta_maps):
        assert len(table.values) <= table._limit
