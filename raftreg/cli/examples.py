"""One example line per command, shown at the end of its ``--help`` (``add_examples``).

Kept in one table so every command has one: tests/unit/test_cli_help.py walks the whole command
tree and fails for a command without an entry here (a new command adds its line below).
"""

from __future__ import annotations

import click

EXAMPLES: dict[str, str] = {
    "": "raftreg --addr 127.0.0.1:8501 lookup web --passing",
    "serve": "raftreg serve --config /etc/raftreg/cluster.toml --node n1",
    "dev": "raftreg dev --nodes 3 --port-base 20000",
    "chaos": "raftreg chaos --nodes 5 --duration 60s --faults kill,partition --report chaos.html",
    "config": "raftreg config init --name prod --node n1=10.0.0.1 --node n2=10.0.0.2 --node n3=10.0.0.3 > prod.toml",
    "config init": "raftreg config init --name prod --node n1=10.0.0.1 --node n2=10.0.0.2 "
                   "--node n3=10.0.0.3 --tls --out-dir prod > prod.toml",
    "config check": "raftreg config check prod.toml",
    "completion": 'eval "$(raftreg completion bash)"',
    "kv": "raftreg kv put config/db/url postgres://db:5432",
    "kv get": "raftreg kv get config/db/url",
    "kv put": "raftreg kv put config/db/url postgres://db:5432 --cas 0",
    "kv delete": "raftreg kv delete config/db/url",
    "kv list": "raftreg kv list config/ --keys",
    "kv watch": "raftreg kv watch config/ --recurse",
    "kv history": "raftreg kv history config/db/url",
    "kv rollback": "raftreg kv rollback config/db/url --to 42",
    "kv export": "raftreg kv export config/ > config.json",
    "kv import": "raftreg kv import config.json --prefix staging/",
    "lock": "raftreg lock backups --ttl 15s -- ./run-backup.sh",
    "elect": "raftreg elect scheduler --identity $(hostname)",
    "tls": "raftreg tls init --config prod.toml --out /etc/raftreg/tls",
    "tls init": "raftreg tls init --config prod.toml --out /etc/raftreg/tls --verify-clients",
    "acl": "raftreg -o json acl bootstrap",
    "acl bootstrap": "raftreg --config prod.toml -o json acl bootstrap",
    "acl token": "raftreg acl token list",
    "acl token create": "raftreg acl token create --description cart --rule 'service \"cart\" write'",
    "acl token list": "raftreg acl token list",
    "acl token read": "raftreg acl token read 6a1f0c2e-...",
    "acl token update": "raftreg acl token update 6a1f0c2e-... --policy readers",
    "acl token delete": "raftreg acl token delete 6a1f0c2e-...",
    "acl policy": "raftreg acl policy list",
    "acl policy create": "raftreg acl policy create readers --rule 'service_prefix \"\" read'",
    "acl policy list": "raftreg acl policy list",
    "acl policy delete": "raftreg acl policy delete readers",
    "snapshot": "raftreg --config prod.toml snapshot save backup.snap",
    "snapshot save": "raftreg --config prod.toml snapshot save backup-$(date +%F).snap",
    "snapshot inspect": "raftreg snapshot inspect backup.snap",
    "snapshot restore": "raftreg --config prod.toml snapshot restore backup.snap",
    "lab": "raftreg lab up --nodes 3",
    "lab up": "raftreg lab up --nodes 5 --dir /tmp/raftreg-lab",
    "lab down": "raftreg lab down --dir /tmp/raftreg-lab",
    "lab status": "raftreg lab status",
    "top": "raftreg --config prod.toml top --interval 2",
    "cluster": "raftreg --config prod.toml cluster members",
    "cluster add": "raftreg cluster add n4 --raft 10.0.0.4:7001 --http 10.0.0.4:8501",
    "cluster remove": "raftreg cluster remove n3",
    "cluster transfer-leader": "raftreg cluster transfer-leader n2",
    "cluster members": "raftreg --config prod.toml cluster members",
    "cluster config": "raftreg --config prod.toml cluster config > live.toml",
    "cluster rolling-restart": "raftreg --config prod.toml cluster rolling-restart --restart-cmd "
                               "'ssh {name} sudo systemctl restart raftreg'",
    "register": "raftreg register web web-1 --address 10.0.0.5 --port 8080 --tag v2 --ttl 10s --keepalive",
    "deregister": "raftreg deregister web web-1",
    "lookup": "raftreg lookup web --passing --tag v2 --watch",
    "services": "raftreg -o json services",
    "status": "raftreg --config prod.toml status",
}


def walk(command: click.Command, path: str = "") -> list[tuple[str, click.Command]]:
    """``(path, command)`` for ``command`` and every subcommand below it ("kv put", ...)."""
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += walk(sub, f"{path} {name}".strip())
    return found


def add_examples(root: click.Group) -> None:
    """Append ``Example:`` and the table's line to every command's help (the ``\\b`` keeps click
    from rewrapping it)."""
    for path, command in walk(root):
        example = EXAMPLES.get(path)
        if example is not None:
            command.epilog = "\b\nExample:\n  " + example
