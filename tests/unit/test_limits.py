"""raftreg.http.limits without a server: the token buckets (a fake clock), the bounded client
table, client identity (a validated token's accessor, else the address) and the ``[limits]`` config checks."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from raftreg.config import ConfigError, LimitsTuning
from raftreg.http.limits import TokenBuckets, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10.0, burst=5, max_clients=10, clock=clock)
    assert [buckets.take("a") for _ in range(5)] == [0.0] * 5
    assert buckets.take("a") == pytest.approx(0.1)
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.11
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 60  # never more than the burst
    assert [buckets.take("a") for _ in range(5)] == [0.0] * 5
    assert buckets.take("a") > 0


def test_the_table_keeps_the_most_recently_seen_clients() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=1, max_clients=3, clock=clock)
    for key in ("a", "b", "c"):
        buckets.take(key)
    buckets.take("a")  # a is now the most recent
    buckets.take("d")  # b goes
    assert len(buckets) == 3
    assert buckets.take("a") > 0  # a kept its (empty) bucket
    assert buckets.take("b") == 0.0  # b starts again full, as an idle client would


KNOWN = {"s3cret": "acc-1"}  # secret -> accessor id: a stand-in for AclManager.accessor_of


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer s3cret"}, {"authorization": "bearer  s3cret"},
                                     {"X-Raftreg-Token": "s3cret"}])
def test_a_validated_token_is_the_client_by_its_accessor(headers: dict[str, str]) -> None:
    key = client_key(make_mocked_request("GET", "/v1/services", headers=headers), KNOWN.get)
    assert key == "t:acc-1" and "s3cret" not in key


def test_unknown_tokens_share_their_address_bucket() -> None:
    plain = client_key(make_mocked_request("GET", "/"), KNOWN.get)
    keys = {client_key(make_mocked_request("GET", "/", headers={"X-Raftreg-Token": f"bogus-{i}"}), KNOWN.get)
            for i in range(20)}
    assert keys == {plain} and plain.startswith("a:")


def test_without_acls_a_token_does_not_make_a_client() -> None:
    plain = client_key(make_mocked_request("GET", "/"))
    assert client_key(make_mocked_request("GET", "/", headers={"X-Raftreg-Token": "s3cret"})) == plain


def test_without_a_token_the_address_is_the_client_and_forwarding_headers_are_ignored() -> None:
    plain = client_key(make_mocked_request("GET", "/"))
    spoofed = client_key(make_mocked_request("GET", "/", headers={"X-Forwarded-For": "10.9.9.9",
                                                                  "User-Agent": "raftreg-node"}))
    assert plain.startswith("a:") and plain == spoofed


@pytest.mark.parametrize("kwargs", [{"rate": -1}, {"burst": 0}, {"max_clients": 0}, {"conns_per_address": -1},
                                    {"blocking_per_client": -1}, {"header_timeout": 0}, {"body_timeout": -1}])
def test_bad_limits_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LimitsTuning(**kwargs)  # type: ignore[arg-type]
