"""``raftreg acl``: bootstrap, tokens and policies (API.md "Authentication").

``acl bootstrap`` and ``acl token create`` print the token's ``secret_id``: the only time it is
ever shown (``-o json`` has ``accessor_id`` and ``secret_id``). Rules are given as
``--rule 'service_prefix "cart" write'`` (repeatable).
"""

from __future__ import annotations

from typing import Any

import click

from raftreg.cli.output import print_json, print_table

TOKEN_HEADERS = ["accessor_id", "description", "rules", "policies", "index"]


def _request(ctx: Any, method: str, path: str, body: Any = None) -> Any:
    with ctx.client() as client:
        return client.request(method, path, json=body, idempotent=method in ("GET", "DELETE")).body


def _show_token(ctx: Any, token: dict[str, Any]) -> None:
    if ctx.output == "json":
        print_json(token)
        return
    for field in ("accessor_id", "secret_id", "description"):
        if field in token:
            click.echo(f"{field}: {token[field]}")
    click.echo(f"rules: {'; '.join(token['rules']) or '-'}")
    click.echo(f"policies: {', '.join(token['policies']) or '-'}")


def _token_row(t: dict[str, Any]) -> list[Any]:
    return [t["accessor_id"], t["description"], "; ".join(t["rules"]), ",".join(t["policies"]), t["modify_index"]]


@click.group()
def acl() -> None:
    """ACL tokens and policies (the cluster must run with [acl] enabled = true)."""


@acl.command()
@click.pass_obj
def bootstrap(ctx: Any) -> None:
    """Create the management token (once; see the README for the reset file)."""
    _show_token(ctx, _request(ctx, "PUT", "/v1/acl/bootstrap", {}))


@acl.group()
def token() -> None:
    """Create, list, read, update and delete tokens."""


@token.command("create")
@click.option("--description", default="", help="What the token is for.")
@click.option("--rule", "rules", multiple=True, help="e.g. 'service_prefix \"cart\" write'; repeatable.")
@click.option("--policy", "policies", multiple=True, help="A policy name; repeatable.")
@click.pass_obj
def token_create(ctx: Any, description: str, rules: tuple[str, ...], policies: tuple[str, ...]) -> None:
    """Create a token; prints its secret_id (shown only now)."""
    body = {"description": description, "rules": list(rules), "policies": list(policies)}
    _show_token(ctx, _request(ctx, "PUT", "/v1/acl/tokens", body))


@token.command("list")
@click.pass_obj
def token_list(ctx: Any) -> None:
    tokens = _request(ctx, "GET", "/v1/acl/tokens")["tokens"]
    if ctx.output == "json":
        print_json(tokens)
    else:
        print_table(TOKEN_HEADERS, [_token_row(t) for t in tokens])


@token.command("read")
@click.argument("accessor_id")
@click.pass_obj
def token_read(ctx: Any, accessor_id: str) -> None:
    _show_token(ctx, _request(ctx, "GET", f"/v1/acl/tokens/{accessor_id}"))


@token.command("update")
@click.argument("accessor_id")
@click.option("--description", default=None)
@click.option("--rule", "rules", multiple=True, help="Replaces the token's rules when given.")
@click.option("--policy", "policies", multiple=True, help="Replaces the token's policies when given.")
@click.pass_obj
def token_update(ctx: Any, accessor_id: str, description: str | None, rules: tuple[str, ...],
                 policies: tuple[str, ...]) -> None:
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    if rules:
        body["rules"] = list(rules)
    if policies:
        body["policies"] = list(policies)
    _show_token(ctx, _request(ctx, "PUT", f"/v1/acl/tokens/{accessor_id}", body))


@token.command("delete")
@click.argument("accessor_id")
@click.pass_obj
def token_delete(ctx: Any, accessor_id: str) -> None:
    out = _request(ctx, "DELETE", f"/v1/acl/tokens/{accessor_id}")
    print_json(out) if ctx.output == "json" else click.echo(f"deleted token {accessor_id}")


@acl.group()
def policy() -> None:
    """Create, list and delete policies."""


@policy.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--rule", "rules", multiple=True, required=True, help="Repeatable.")
@click.pass_obj
def policy_create(ctx: Any, name: str, description: str, rules: tuple[str, ...]) -> None:
    out = _request(ctx, "PUT", "/v1/acl/policies", {"name": name, "description": description, "rules": list(rules)})
    print_json(out) if ctx.output == "json" else click.echo(f"policy {name}: {'; '.join(out['rules'])}")


@policy.command("list")
@click.pass_obj
def policy_list(ctx: Any) -> None:
    policies = _request(ctx, "GET", "/v1/acl/policies")["policies"]
    if ctx.output == "json":
        print_json(policies)
    else:
        print_table(["name", "description", "rules", "index"],
                    [[p["name"], p["description"], "; ".join(p["rules"]), p["modify_index"]] for p in policies])


@policy.command("delete")
@click.argument("name")
@click.pass_obj
def policy_delete(ctx: Any, name: str) -> None:
    out = _request(ctx, "DELETE", f"/v1/acl/policies/{name}")
    print_json(out) if ctx.output == "json" else click.echo(f"deleted policy {name}")


def _set_token(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value and ctx.obj is not None and hasattr(ctx.obj, "token"):
        ctx.obj.token = value


def add_token_option(group: click.Group) -> None:
    """Give every command under ``group`` its own ``--token`` (as well as the group's), so
    ``raftreg acl token list --token S`` works like ``raftreg --token S acl token list``."""
    for name, command in group.commands.items():
        if name in ("serve", "dev", "chaos"):  # they run nodes; they send no requests
            continue
        if isinstance(command, click.Group):
            add_token_option(command)
        elif not any(p.name == "token" for p in command.params):
            command.params.append(click.Option(["--token"], expose_value=False, callback=_set_token,
                                               help="ACL token secret (or $RAFTREG_TOKEN, or raftreg --token)."))
