"""Pure helpers of ``raftreg kv``: how values are shown, and how an import is cut into transactions
(at most 64 ops and 600,000 value bytes each, a larger value alone, order kept)."""

from __future__ import annotations

import pytest

from raftreg.cli.kv import IMPORT_MAX_BYTES, IMPORT_MAX_OPS, chunks, show


@pytest.mark.parametrize(("value", "shown"), [
    (b"plain text", "plain text"),
    ("héllo\tworld\n".encode(), "héllo\tworld\n"),
    (b"\x00\xff", "base64:AP8="),
    (b"\x1b[31m", "base64:G1szMW0="),  # control characters are not printed raw
])
def test_values_are_text_when_printable_utf8_else_base64(value: bytes, shown: str) -> None:
    assert show(value) == shown


def test_a_long_value_is_cut_for_tables() -> None:
    assert show(b"x" * 100, 10) == "xxxxxxx..."


def test_imports_are_cut_by_op_count_and_bytes_in_order() -> None:
    items = [(f"k{n:03}", b"v", 0) for n in range(130)]
    sizes = [len(c) for c in chunks(items)]
    assert sizes == [IMPORT_MAX_OPS, IMPORT_MAX_OPS, 2]
    assert [op.key for c in chunks(items) for op in c] == [k for k, _, _ in items]
    big = IMPORT_MAX_BYTES // 2 + 1
    heavy = [("a", b"x" * big, 1), ("b", b"x" * big, 2), ("c", b"x" * (IMPORT_MAX_BYTES + 5), 3), ("d", b"", 0),
             ("e", b"", 0)]
    cut = list(chunks(heavy))
    assert [[op.key for op in c] for c in cut] == [["a"], ["b"], ["c"], ["d", "e"]]  # the large one alone
    assert cut[0][0].flags == 1 and cut[3][0].flags is None  # flags 0 are left out of the op
