"""``raftreg.dns.cache.AnswerCache``: kept answers by query bytes and catalog version."""

from __future__ import annotations

import random

from raftreg.dns.cache import AnswerCache

RNG = random.Random(5)
Q = (True, b"question")


def test_an_answer_is_served_only_once_all_its_variants_were_kept() -> None:
    cache = AnswerCache()
    for n in range(3):
        assert cache.pick(Q, 1, RNG) is None
        cache.add(Q, 1, f"body{n}".encode(), 3)
    picks = {cache.pick(Q, 1, RNG) for _ in range(60)}
    assert picks == {b"body0", b"body1", b"body2"}
    cache.add(Q, 1, b"body3", 3)  # a fourth is not kept
    assert b"body3" not in {cache.pick(Q, 1, RNG) for _ in range(60)}
    assert cache.hits == 120


def test_a_single_record_answer_is_kept_once() -> None:
    cache = AnswerCache()
    assert cache.pick(Q, 1, RNG) is None
    cache.add(Q, 1, b"one", 1)
    assert cache.pick(Q, 1, RNG) == b"one"


def test_transport_and_bytes_are_part_of_the_key() -> None:
    cache = AnswerCache()
    cache.pick(Q, 1, RNG)
    cache.add(Q, 1, b"udp", 1)
    assert cache.pick((False, b"question"), 1, RNG) is None
    assert cache.pick((True, b"Question"), 1, RNG) is None


def test_a_new_version_drops_everything_and_late_adds_are_ignored() -> None:
    cache = AnswerCache()
    cache.pick(Q, 1, RNG)
    cache.add(Q, 1, b"old", 1)
    assert cache.pick(Q, 2, RNG) is None
    cache.add(Q, 1, b"rendered before the change", 1)  # version 1 is gone
    assert cache.pick(Q, 2, RNG) is None
    cache.add(Q, 2, b"new", 1)
    assert cache.pick(Q, 2, RNG) == b"new"


def test_errors_are_not_kept() -> None:
    cache = AnswerCache()
    cache.pick(Q, 1, RNG)
    cache.add(Q, 1, b"servfail", 0)
    assert cache.pick(Q, 1, RNG) is None


def test_at_most_max_keys_questions_are_kept_the_oldest_go_first() -> None:
    cache = AnswerCache(max_keys=2)
    cache.pick(Q, 1, RNG)
    for name in (b"a", b"b", b"c"):
        cache.add((True, name), 1, name, 1)
    assert cache.pick((True, b"a"), 1, RNG) is None
    assert cache.pick((True, b"b"), 1, RNG) == b"b" and cache.pick((True, b"c"), 1, RNG) == b"c"
