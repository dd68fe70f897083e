"""Node-to-node signatures (raftreg.signing) on a fake clock."""

from __future__ import annotations

import pytest

from raftreg.signing import HEADER, SignatureRejected, Signer, Verifier


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed(secret: str = "s3cret", at: float = 1_000_000.0, method: str = "POST", target: str = "/v1/internal/x",
           body: bytes = b'{"a":1}') -> str:
    return Signer(secret, "n2", clock=lambda: at).headers(method, target, body)[HEADER]


def test_a_valid_signature_names_its_sender() -> None:
    assert Verifier("s3cret", clock=Clock()).verify(signed(), "POST", "/v1/internal/x", b'{"a":1}') == "n2"


@pytest.mark.parametrize(("header", "method", "target", "body", "reason"), [
    (None, "POST", "/v1/internal/x", b'{"a":1}', "no signature"),
    ("", "POST", "/v1/internal/x", b'{"a":1}', "no signature"),
    ("v1 t=1", "POST", "/v1/internal/x", b'{"a":1}', "malformed"),
    ("v2 t=1 n=2 s=3 h=4", "POST", "/v1/internal/x", b'{"a":1}', "malformed"),
    (signed(secret="other"), "POST", "/v1/internal/x", b'{"a":1}', "bad signature"),
    (signed(), "POST", "/v1/internal/x", b'{"a":2}', "bad signature"),
    (signed(), "PUT", "/v1/internal/x", b'{"a":1}', "bad signature"),
    (signed(), "POST", "/v1/internal/x/", b'{"a":1}', "bad signature"),
    (signed(), "POST", "/v1/internal/x?y=1", b'{"a":1}', "bad signature"),
    (signed(at=1_000_000.0 - 6), "POST", "/v1/internal/x", b'{"a":1}', "clock"),
    (signed(at=1_000_000.0 + 6), "POST", "/v1/internal/x", b'{"a":1}', "clock"),
])
def test_what_is_refused(header: str | None, method: str, target: str, body: bytes, reason: str) -> None:
    with pytest.raises(SignatureRejected, match=reason):
        Verifier("s3cret", clock=Clock()).verify(header, method, target, body)


def test_a_replay_within_the_window_is_refused() -> None:
    verifier, header = Verifier("s3cret", clock=Clock()), signed()
    verifier.verify(header, "POST", "/v1/internal/x", b'{"a":1}')
    with pytest.raises(SignatureRejected, match="replayed"):
        verifier.verify(header, "POST", "/v1/internal/x", b'{"a":1}')


def test_two_identical_requests_carry_different_nonces() -> None:
    verifier = Verifier("s3cret", clock=Clock())
    for _ in range(3):
        verifier.verify(signed(), "POST", "/v1/internal/x", b'{"a":1}')


def test_the_replay_cache_forgets_what_the_clock_window_already_refuses() -> None:
    clock = Clock()
    verifier = Verifier("s3cret", clock=clock)
    for i in range(100):
        clock.now = 1_000_000.0 + i
        verifier.verify(signed(at=clock.now), "POST", "/v1/internal/x", b'{"a":1}')
    assert len(verifier._seen) <= 11


def test_a_forged_signature_is_not_remembered() -> None:
    verifier = Verifier("s3cret", clock=Clock())
    for _ in range(50):
        with pytest.raises(SignatureRejected):
            verifier.verify(signed(secret="attacker"), "POST", "/v1/internal/x", b'{"a":1}')
    assert verifier._seen == {}


def test_the_secret_is_required() -> None:
    with pytest.raises(ValueError):
        Signer("", "n1")
    with pytest.raises(ValueError):
        Verifier("")
