"""The cluster config's tables for what serves clients around the core: ``[limits]``, ``[quotas]``,
``[acl]``, ``[dns]``, ``[logging]`` and ``[metrics]`` (the Raft, lease, check, KV and TLS tables
are in ``raftreg.config``, which re-exports these). Each is a frozen msgspec Struct that refuses
unknown fields and checks its values in ``__post_init__`` (``ConfigError`` naming the setting).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec


class ConfigError(Exception):
    """A cluster config file is unreadable or inconsistent (an operator's error, never sent to a
    client: it is deliberately outside ``raftreg.errors``' client-facing tree)."""


class LimitsTuning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits against abusive clients, per node (``raftreg.http.limits``; README, "Limits against
    abusive clients"). A client is its validated token's accessor (ACLs on), else its address.

    ``rate``/``burst``: a token bucket per client, refilled at ``rate`` requests per second and
    holding at most ``burst``; an empty bucket answers 429 ``rate_limited`` with ``Retry-After``
    (``rate = 0`` turns it off). The defaults are generous on purpose: one client far beyond any
    benchmark's load is throttled, shared-address clients behind a NAT are not. At most
    ``max_clients`` buckets are kept (the least recently seen go first). ``conns_per_address``
    concurrent connections per remote address (more are answered 429 and closed at accept) and
    ``blocking_per_client`` parked blocking queries (``?index``/``?min_index``) per client (more
    are 429); 0 turns either off; the defaults leave room for watch_bench's 5,000 watchers from one
    host. ``header_timeout``: a connection must deliver a complete request head within this many
    seconds of opening or of its previous answer (idle keep-alive connections close then too);
    ``body_timeout``: a request body must arrive within this many seconds (else 408 and close).
    """

    rate: float = 10_000.0
    burst: int = 20_000
    max_clients: int = 100_000
    conns_per_address: int = 6000
    blocking_per_client: int = 6000
    header_timeout: float = 10.0
    body_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1 or self.max_clients < 1:
            raise ConfigError("limits.rate must not be negative, limits.burst and limits.max_clients at least 1")
        if self.conns_per_address < 0 or self.blocking_per_client < 0:
            raise ConfigError("limits.conns_per_address and limits.blocking_per_client must not be negative")
        if not (self.header_timeout > 0 and self.body_timeout > 0):
            raise ConfigError("limits.header_timeout and limits.body_timeout must be positive")


class QuotaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[quotas]``: how many objects the store may hold (``raftreg.node.quotas``; README, "Limits
    against abusive clients"). A client write that would create an object past a cap is refused
    with 507 ``quota_exceeded`` before anything is proposed; writes that change or delete
    existing objects, and every read, still work. 0 turns a cap off. The defaults are well above
    what the benchmarks store (100,000 instances or keys) and well below what exhausts a node's
    memory with records at their size limits."""

    max_services: int = 10_000
    max_instances_per_service: int = 100_000
    max_instances: int = 500_000
    max_keys: int = 500_000
    max_sessions: int = 100_000

    def __post_init__(self) -> None:
        for field in msgspec.structs.fields(self):
            if getattr(self, field.name) < 0:
                raise ConfigError(f"quotas.{field.name} must not be negative")


class AclSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """ACLs (README "ACLs"): off by default. ``default_policy``: what a request gets on whatever
    no rule of its token speaks of ("deny", or "allow"; ACL management is never allowed by
    default). ``audit``: one log line per write and per denied decision."""

    enabled: bool = False
    default_policy: Literal["deny", "allow"] = "deny"
    audit: bool = False


class DnsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[dns]``: the DNS interface (``raftreg.dns``; README "DNS interface"), served by the nodes
    that have a ``dns`` address. Defaults follow Consul's where they make sense.

    ``domain``: the zone answered (``<svc>.service.<domain>``); names outside it are REFUSED.
    ``ttl``: seconds, of every record and of the SOA's negative-caching minimum (Consul's 0).
    ``only_passing``: false also serves ``warning`` instances (never ``critical`` ones).
    ``udp_answer_limit``: at most this many answer records over UDP to a query without EDNS0
    (Consul's ``udp_answer_limit``; 0, the default here, keeps as many as fit in 512 bytes).
    ``enable_truncate``: set the TC bit when a UDP answer was trimmed, so resolvers retry over TCP.
    ``tcp_idle_timeout``: seconds a TCP connection may stay without a complete query;
    ``max_tcp_connections``: concurrent TCP connections per node (more are closed at accept).
    """

    domain: str = "consul"
    ttl: int = 0
    only_passing: bool = True
    udp_answer_limit: int = 0
    enable_truncate: bool = True
    tcp_idle_timeout: float = 10.0
    max_tcp_connections: int = 512

    def __post_init__(self) -> None:
        labels = self.domain.split(".")
        if not all(_DNS_LABEL.match(label) for label in labels) or len(self.domain) > 200:
            raise ConfigError(f"dns.domain {self.domain!r} is not a lower-case domain name (e.g. \"consul\")")
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ConfigError("dns.ttl must be between 0 and 2147483647 seconds")
        if self.udp_answer_limit < 0:
            raise ConfigError("dns.udp_answer_limit must not be negative (0: as many as fit)")
        if not self.tcp_idle_timeout > 0 or self.max_tcp_connections < 1:
            raise ConfigError("dns.tcp_idle_timeout must be positive and dns.max_tcp_connections at least 1")


class LoggingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[logging]`` (``raftreg.logs``): ``format`` ``text`` (key=value lines) or ``json`` (one
    object per line; ``serve --log-format`` overrides it); ``requests``: one line per request."""

    format: Literal["text", "json"] = "text"
    requests: bool = False


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[metrics]``: ``enabled`` off means no request counting, no collectors, ``/metrics`` 404."""

    enabled: bool = True


_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
