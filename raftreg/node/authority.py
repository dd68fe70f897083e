"""The authority of the request being served: which token a client's write carries.

The HTTP layer sets ``current_authority`` for the request it serves (``raftreg.http.auth``);
``Writer.commit`` reads it and wraps a client's command in ``Authorized`` (token accessor, ACL
index, default policy), so apply re-checks it. ``None`` (the default, and in the node's own
background tasks): the command goes into the log as it is.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from raftreg.state.acl_rules import Token


@dataclass(frozen=True)
class Authority:
    """A request's identity once its token was checked: ``token`` None for a request without a
    token (allowed only under the ``allow`` default policy), ``operator`` for a request signed
    with the cluster secret (a cluster member, or whoever holds the secret: every right)."""

    token: Token | None
    acl_index: int
    default_allow: bool
    operator: bool = False

    @property
    def accessor_id(self) -> str:
        return self.token.accessor_id if self.token is not None else ""


current_authority: ContextVar[Authority | None] = ContextVar("raftreg_authority", default=None)
