"""The ACL routes of the OpenAPI document (``raftreg.http.openapi``): their reply types and one
line per operation, kept apart so the document's module stays small. With ACLs off every one of
them answers 403 (``raftreg.http.acl_api``)."""

from __future__ import annotations

from typing import Any

import msgspec


class AclToken(msgspec.Struct):
    """A token as the ACL routes show it; ``secret_id`` only in the answer that created it."""

    accessor_id: str
    description: str
    rules: list[str]
    policies: list[str]
    create_index: int
    modify_index: int
    secret_id: str | None = None
    index: int | None = None


class AclTokenList(msgspec.Struct):
    index: int
    tokens: list[AclToken]


class AclPolicy(msgspec.Struct):
    name: str
    description: str
    rules: list[str]
    create_index: int
    modify_index: int
    index: int | None = None


class AclPolicyList(msgspec.Struct):
    index: int
    policies: list[AclPolicy]


class AclDeleted(msgspec.Struct):
    deleted: bool
    index: int


class AclTokenBody(msgspec.Struct):
    """``PUT /v1/acl/tokens`` and ``PUT /v1/acl/tokens/{accessor_id}``: rules in Consul's shape,
    e.g. ``service_prefix "cart" write``."""

    description: str | None = None
    rules: list[str] | None = None
    policies: list[str] | None = None


class AclPolicyBody(msgspec.Struct):
    name: str | None = None
    description: str = ""
    rules: list[str] = []


TOKEN = "/v1/acl/tokens/{accessor_id}"
POLICY = "/v1/acl/policies/{name}"
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "accessor_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,128}$"},
}
# (method, path, summary, 2xx types, body type, extra error statuses); tag "acl", 403 always documented
ACL_OPS: tuple[tuple[str, str, str, tuple[type, ...], type | None, tuple[int, ...]], ...] = (
    ("PUT", "/v1/acl/bootstrap", "Create the management token (once)", (AclToken,), None, (403, 504)),
    ("GET", "/v1/acl/token/self", "The token of this request", (AclToken,), None, (401, 403)),
    ("PUT", "/v1/acl/tokens", "Create a token", (AclToken,), AclTokenBody, (400, 403, 413, 504)),
    ("GET", "/v1/acl/tokens", "Every token (never a secret)", (AclTokenList,), None, (403,)),
    ("GET", TOKEN, "Read a token", (AclToken,), None, (403, 404)),
    ("PUT", TOKEN, "Update a token's description, rules or policies", (AclToken,), AclTokenBody,
     (400, 403, 404, 413, 504)),
    ("DELETE", TOKEN, "Delete a token", (AclDeleted,), None, (403, 404, 504)),
    ("PUT", "/v1/acl/policies", "Create or replace a policy", (AclPolicy,), AclPolicyBody, (400, 403, 413, 504)),
    ("GET", "/v1/acl/policies", "Every policy", (AclPolicyList,), None, (403,)),
    ("GET", POLICY, "Read a policy", (AclPolicy,), None, (403, 404)),
    ("PUT", POLICY, "Create or replace a policy", (AclPolicy,), AclPolicyBody, (400, 403, 413, 504)),
    ("DELETE", POLICY, "Delete a policy", (AclDeleted,), None, (403, 404, 504)),
)
