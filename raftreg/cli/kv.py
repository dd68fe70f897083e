"""``raftreg kv``: the key/value store from the command line, on the blocking client.

    raftreg kv put app/db/url postgres://db:5432     raftreg kv get app/db/url
    raftreg kv list app/                             raftreg kv watch app/ --recurse
    raftreg kv history app/db/url                    raftreg kv rollback app/db/url 41
    raftreg kv export app/ > app.json                raftreg kv import app.json --prefix staging/app/

Output: text by default, ``-o json`` for scripts (API.md's documents; values base64). A value is
shown as text when it is UTF-8 without control characters, else as ``base64:...``. A conditional
write that loses (``--cas``), a missing key and every error print one line and exit 1.

Export format (JSON): ``{"prefix": P, "index": N, "entries": [{"key", "value": base64, "flags"}]}``.
Import writes with one transaction per chunk of at most 64 keys and 600,000 value bytes (the body
stays under the 1 MiB limit): each chunk is all-or-nothing; a chunk whose outcome is unknown is
sent again (it holds only ``set`` ops, so a replay writes the same values). ``--prefix NEW``
replaces the export's prefix with NEW in every key.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from raftreg.cli.interruptible import in_background
from raftreg.cli.output import print_json, print_table
from raftreg.client import KVDeleted, KVEntry, KVWrite, NotFound, OutcomeUnknown, TxnOp, txn
from raftreg.errors import Conflict

if TYPE_CHECKING:
    from raftreg.cli.main import Ctx

PREVIEW = 60
IMPORT_MAX_OPS = 64
IMPORT_MAX_BYTES = 600_000
IMPORT_REPLAYS = 3


def show(value: bytes, limit: int | None = None) -> str:
    """The value as text, or ``base64:...`` when it is not printable UTF-8; cut to ``limit``."""
    try:
        text = value.decode()
        printable = all(c.isprintable() or c in "\t\n" for c in text)
    except UnicodeDecodeError:
        printable = False
    shown = text if printable else "base64:" + base64.b64encode(value).decode()
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


def _entry_rows(entries: tuple[KVEntry, ...]) -> list[list[Any]]:
    return [[e.key, e.flags, e.modify_index, show(e.value, PREVIEW).replace("\n", "\\n")] for e in entries]


def _report(ctx: Ctx, result: KVWrite | KVDeleted, conflict: str, done: str) -> None:
    """A write's answer: its JSON (``-o json``) or ``done``; a failed condition raises ``Conflict``
    (one error line, exit 1) after the JSON."""
    if ctx.output == "json":
        print_json(result.to_wire())
    if not result.ok:
        raise Conflict(conflict)
    if ctx.output != "json":
        click.echo(done)


@click.group()
def kv() -> None:
    """Read and write the key/value store."""


@kv.command("get")
@click.argument("key")
@click.option("--consistent", is_flag=True, help="Linearizable read (through the leader).")
@click.option("--detail", is_flag=True, help="Show flags and indexes too.")
@click.pass_obj
def get_cmd(ctx: Ctx, key: str, consistent: bool, detail: bool) -> None:
    """Print a key's value (exit 1 if the key is absent)."""
    with ctx.client() as client:
        entry = client.kv_get(key, consistent=consistent)
    if entry is None:
        raise NotFound(f"no key {key!r}")
    if ctx.output == "json":
        print_json(entry.to_wire())
    elif detail:
        print_table(["key", "flags", "create index", "modify index", "lock index", "session", "value"],
                    [[entry.key, entry.flags, entry.create_index, entry.modify_index, entry.lock_index,
                      entry.session or "", show(entry.value, PREVIEW)]])
    else:
        click.echo(show(entry.value))


@kv.command("put")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--file", "path", type=click.File("rb"), help="Read the value from this file ('-': stdin).")
@click.option("--flags", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="A number stored with the value, for the caller.")
@click.option("--cas", type=click.IntRange(min=0), help="Write only if the key's modify index is this (0: absent).")
@click.pass_obj
def put_cmd(ctx: Ctx, key: str, value: str | None, path: Any, flags: int, cas: int | None) -> None:
    """Write a key: VALUE as given, or the bytes of --file."""
    if (value is None) == (path is None):
        raise click.UsageError("give a VALUE or --file, not both")
    data = path.read() if path is not None else (value or "").encode()
    with ctx.client() as client:
        result = client.kv_put(key, data, flags=flags, cas=cas)
    _report(ctx, result, f"{key}: modify index is not {cas}; nothing written", f"put {key} at index {result.index}")


@kv.command("delete")
@click.argument("key")
@click.option("--recurse", is_flag=True, help="Delete every key under KEY as a prefix.")
@click.option("--cas", type=click.IntRange(min=1), help="Delete only if the key's modify index is this.")
@click.pass_obj
def delete_cmd(ctx: Ctx, key: str, recurse: bool, cas: int | None) -> None:
    """Delete a key, or a prefix with --recurse (deleting nothing is not an error)."""
    with ctx.client() as client:
        result = client.kv_delete(key, recurse=recurse, cas=cas)
    _report(ctx, result, f"{key}: modify index is not {cas}; nothing deleted",
            f"deleted {result.deleted} key{'s' * (result.deleted != 1)} at index {result.index}")


@kv.command("list")
@click.argument("prefix", default="")
@click.option("--keys", "names_only", is_flag=True, help="Key names only.")
@click.option("--separator", help="With --keys: one level, deeper keys folded at this separator.")
@click.option("--consistent", is_flag=True, help="Linearizable read (through the leader).")
@click.pass_obj
def list_cmd(ctx: Ctx, prefix: str, names_only: bool, separator: str | None, consistent: bool) -> None:
    """List the keys under PREFIX (all keys by default)."""
    with ctx.client() as client:
        if names_only or separator is not None:
            names = client.kv_keys(prefix, separator, consistent=consistent)
            if ctx.output == "json":
                print_json(names.to_wire())
            else:
                for name in names.keys:
                    click.echo(name)
            return
        found = client.kv_list(prefix, consistent=consistent)
    if ctx.output == "json":
        print_json(found.to_wire())
    else:
        print_table(["key", "flags", "index", "value"], _entry_rows(found.entries))
        click.echo(f"({len(found.entries)} keys, index {found.index})")


@kv.command("watch")
@click.argument("key")
@click.option("--recurse", is_flag=True, help="Watch every key under KEY as a prefix.")
@click.pass_obj
def watch_cmd(ctx: Ctx, key: str, recurse: bool) -> None:
    """Print the key (or prefix) now and at every change (-o json: one JSON line each)."""
    with ctx.client() as client:
        for found in in_background(client.watch_kv(key, recurse=recurse)):
            if ctx.output == "json":
                click.echo(json.dumps(found.to_wire(), sort_keys=True, separators=(",", ":")))
            else:
                click.echo(f"--- {time.strftime('%H:%M:%S')} index {found.index}")
                if found.entries or recurse:
                    print_table(["key", "flags", "index", "value"], _entry_rows(found.entries))
                else:
                    click.echo(f"({key} is absent)")
            sys.stdout.flush()


@kv.command("history")
@click.argument("key")
@click.pass_obj
def history_cmd(ctx: Ctx, key: str) -> None:
    """The key's retained earlier versions, newest first (give one's index to ``rollback``)."""
    with ctx.client() as client:
        found = client.kv_history(key)
    if ctx.output == "json":
        print_json(found.to_wire())
    else:
        print_table(["modify index", "flags", "value"],
                    [[v.modify_index, v.flags, show(v.value, PREVIEW)] for v in found.versions])


@kv.command("rollback")
@click.argument("key")
@click.argument("index", type=click.IntRange(min=1), required=False)
@click.option("--to", "to_index", type=click.IntRange(min=1), metavar="INDEX",
              help="The modify index of the version to write back (or give INDEX after KEY).")
@click.pass_obj
def rollback_cmd(ctx: Ctx, key: str, index: int | None, to_index: int | None) -> None:
    """Write back the value and flags KEY had at INDEX (see ``history``), unless it changes meanwhile:
    ``raftreg kv rollback KEY --to INDEX`` (or ``KEY INDEX``)."""
    chosen = index if to_index is None else to_index
    if chosen is None or (index is not None and to_index is not None):
        raise click.UsageError("give the version's index once: --to INDEX (or INDEX after KEY)")
    index = chosen
    with ctx.client() as client:
        result = client.kv_rollback(key, index)
    _report(ctx, result, f"{key} changed during the rollback; nothing written",
            f"rolled {key} back to its version of index {index}, at index {result.index}")


@kv.command("export")
@click.argument("prefix", default="")
@click.pass_obj
def export_cmd(ctx: Ctx, prefix: str) -> None:
    """Write every key under PREFIX as JSON to stdout (base64 values, flags)."""
    with ctx.client() as client:
        found = client.kv_list(prefix, consistent=True)
    entries = [{"key": e.key, "value": base64.b64encode(e.value).decode(), "flags": e.flags} for e in found.entries]
    print_json({"prefix": prefix, "index": found.index, "entries": entries})


def _load_export(raw: bytes, prefix: str | None) -> list[tuple[str, bytes, int]]:
    try:
        doc = json.loads(raw)
        old = doc.get("prefix", "") if isinstance(doc, dict) else ""
        items = doc["entries"] if isinstance(doc, dict) else doc
        out = []
        for item in items:
            key = str(item["key"])
            if prefix is not None:
                if not key.startswith(old):
                    raise ValueError(f"key {key!r} is not under the export's prefix {old!r}")
                key = prefix + key[len(old):]
            out.append((key, base64.b64decode(item["value"] or "", validate=True), int(item.get("flags", 0))))
        return out
    except (KeyError, TypeError, AttributeError, binascii.Error, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"not a kv export: {exc}", param_hint="FILE") from None


def chunks(items: list[tuple[str, bytes, int]]) -> Iterator[list[TxnOp]]:
    """Transactions of at most ``IMPORT_MAX_OPS`` ops and ``IMPORT_MAX_BYTES`` value bytes (one
    larger value goes alone)."""
    ops: list[TxnOp] = []
    size = 0
    for key, value, flags in items:
        if ops and (len(ops) == IMPORT_MAX_OPS or size + len(value) > IMPORT_MAX_BYTES):
            yield ops
            ops, size = [], 0
        ops.append(txn.put(key, value, flags))
        size += len(value)
    if ops:
        yield ops


@kv.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--prefix", help="Replace the export's prefix with this one in every key.")
@click.pass_obj
def import_cmd(ctx: Ctx, file: Any, prefix: str | None) -> None:
    """Write the keys of an export (FILE, '-' for stdin), one transaction per chunk of 64 keys."""
    items = _load_export(file.read(), prefix)
    written, index = 0, 0
    with ctx.client() as client:
        for ops in chunks(items):
            for replay in range(IMPORT_REPLAYS + 1):
                try:
                    result = client.txn(ops)
                    break
                except OutcomeUnknown:
                    if replay == IMPORT_REPLAYS:
                        raise
            if not result.ok:
                raise Conflict(f"a transaction of the import failed at op {result.failed}: {result.error}")
            written, index = written + len(ops), result.index
    if ctx.output == "json":
        print_json({"imported": written, "index": index})
    else:
        click.echo(f"imported {written} keys, last at index {index}")
