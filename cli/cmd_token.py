"""`tinykube token create|list|delete`: bootstrap tokens for joining nodes (kubeadm token).

A node that joins the cluster needs *some* credential for its very first
request -- the CSR that gets it a real certificate. kubeadm's answer is a
bootstrap token: short-lived, good for nothing but bootstrapping, stored as a
Secret in kube-system (apimachinery/clusterbootstrap.py has the layout), and
deleted by the tokencleaner controller when it expires.

    $ tinykube token create --print-join-command
    tinykube join 10.0.0.1:6444 --token 9a08jv.c0izixklcxtmnze7 \\
        --discovery-token-ca-cert-hash sha256:8f1c... --node-name "$(hostname)" \\
        --out /etc/tinykube/bootstrap-kubelet.conf
    $ tinykube token list
    TOKEN                     TTL   EXPIRES                USAGES                   DESCRIPTION ...
    9a08jv.c0izixklcxtmnze7   23h   2024-05-02T10:00:00Z   authentication,signing   <none>      ...
    $ tinykube token delete 9a08jv
    bootstrap token "9a08jv" deleted

`create` makes a random token (or takes the one given, in the form
[a-z0-9]{6}.[a-z0-9]{16}), valid for --ttl (24h; 0 = never expires), usable
for authentication and signing, in the group
system:bootstrappers:kubeadm:default-node-token beside system:bootstrappers.
With --print-join-command it prints the line a new node runs instead of the
bare token: the API server's token port (--join-address, by default this
server's host and port 6444), the token, and the CA pin -- the SHA-256 of
the cluster CA's public key read from --ca-cert (kubeadm's
/etc/kubernetes/pki/ca.crt is tinykube's /etc/tinykube/pki/ca.crt), which
the joining node compares with the CA its TLS handshake shows before it
sends the token anywhere (cli/cmd_join.py). The CA is read before the token
is made, so a missing CA file leaves no token behind.

`delete` takes token ids or whole tokens.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import click

from apimachinery import certs, errors
from apimachinery import clusterbootstrap as bt
from cli import context, tabwriter
from cli.cells import NONE, human_duration
from cli.context import CommandError, Options
from cli.durations import DURATION
from protos import core_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

DEFAULT_CA_CERT = "/etc/tinykube/pki/ca.crt"  # `tinykube pki init --dir /etc/tinykube`
TOKEN_PORT = 6444  # the API server's --token-listen port
BOOTSTRAP_KUBECONFIG = "/etc/tinykube/bootstrap-kubelet.conf"  # kubeadm's name
USAGES = ("signing", "authentication")


def join_address(opts: Options, given: str) -> str:
    """--join-address, else this server's host at the token port."""
    if given:
        return given
    if opts.server.startswith("unix:"):
        raise CommandError("the server is a unix socket: give --join-address HOST:PORT")
    host = opts.server.rpartition(":")[0]
    return f"{host}:{TOKEN_PORT}"


def join_command(address: str, token: bt.Token, ca_hash: str) -> str:
    """The line a new node runs (`tinykube join`, kubeadm join's discovery)."""
    return (
        f"tinykube join {address} --token {token} --discovery-token-ca-cert-hash {ca_hash}"
        f' --node-name "$(hostname)" --out {BOOTSTRAP_KUBECONFIG}'
    )


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def check_create_flags(usages: list[str], groups: list[str]) -> None:
    """kubeadm's checks of --usages and --groups."""
    for usage in usages:
        if usage not in USAGES:
            raise CommandError(
                f'invalid bootstrap token usage "{usage}" (valid: signing,authentication)'
            )
    for group in groups:
        if not bt.GROUP_RE.fullmatch(group):
            raise CommandError(f'--groups "{group}" must match {bt.GROUP_RE.pattern}')
    if groups and "authentication" not in usages:
        raise CommandError(
            'token groups cannot be specified unless --usages includes "authentication"'
        )


async def create_token(client: Client, secret: core_pb2.Secret) -> None:
    try:
        await client.create(secret)
    except errors.AlreadyExists:
        token_id = bt.data(secret, bt.TOKEN_ID_KEY)
        raise CommandError(f'a token with id "{token_id}" already exists') from None


def token_row(secret: core_pb2.Secret, now: datetime.datetime) -> str:
    """One `token list` line: TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS."""
    token = f"{bt.data(secret, bt.TOKEN_ID_KEY)}.{bt.data(secret, bt.TOKEN_SECRET_KEY)}"
    left, expired = bt.time_to_expiry(secret, now)
    expiration = bt.data(secret, bt.EXPIRATION_KEY)
    ttl = "<forever>" if left is None else "<invalid>" if expired else human_duration(left)
    usages = sorted(
        key[len(bt.USAGE_PREFIX) :]
        for key in secret.data
        if key.startswith(bt.USAGE_PREFIX) and bt.data(secret, key) == "true"
    )
    cells = [
        token,
        ttl,
        expiration or "<never>",
        ",".join(usages) or NONE,
        bt.data(secret, bt.DESCRIPTION_KEY) or NONE,
        bt.data(secret, bt.EXTRA_GROUPS_KEY) or NONE,
    ]
    return "\t".join(cells)


async def list_tokens(client: Client) -> int:
    secrets, _ = await client.list(
        core_pb2.Secret, bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}"
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = ["TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS"]
    lines += [token_row(s, now) for s in sorted(secrets, key=lambda s: s.metadata.name)]
    click.echo(tabwriter.render(lines), nl=False)
    return 0


async def delete_tokens(client: Client, ids: tuple[str, ...]) -> int:
    code = 0
    for given in ids:
        parsed = bt.parse_token(given)
        token_id = parsed.id if parsed is not None else given
        if not bt.TOKEN_ID_RE.fullmatch(token_id):
            context.echo_err(f'error: "{given}" is neither a token id nor a token')
            code = 1
            continue
        try:
            await client.delete(core_pb2.Secret, bt.secret_name(token_id), bt.NAMESPACE)
        except errors.NotFound:
            context.echo_err(f'error: bootstrap token "{token_id}" not found')
            code = 1
            continue
        click.echo(f'bootstrap token "{token_id}" deleted')
    return code


@click.group("token")
def token() -> None:
    """Manage bootstrap tokens: create, list, delete."""


def prepare(
    opts: Options, given: str | None, print_join: bool, ca_cert: str, address: str
) -> tuple[bt.Token, str]:
    """The token (given or new) and the line to print; CommandError/CertError/OSError."""
    parsed = bt.parse_token(given) if given else bt.generate_token()
    if parsed is None:
        raise CommandError(f'token "{given}" does not match {bt.TOKEN_RE.pattern}')
    if not print_join:
        return parsed, str(parsed)
    ca_hash = certs.ca_hash(certs.read_cert(ca_cert))  # before the token exists
    return parsed, join_command(join_address(opts, address), parsed, ca_hash)


@token.command("create")
@click.argument("given", required=False, metavar="[TOKEN]")
@click.option("--ttl", type=DURATION, default="24h", show_default=True, help="0: never expires.")
@click.option("--description", default="", help="A human-readable note kept with the token.")
@click.option("--usages", default="signing,authentication", show_default=True)
@click.option("--groups", default=bt.DEFAULT_NODE_TOKEN_GROUP, show_default=True)
@click.option("--print-join-command", is_flag=True, help="Print the `tinykube join` line.")
@click.option("--ca-cert", default=DEFAULT_CA_CERT, show_default=True, help="The cluster CA.")
@click.option("--join-address", default="", metavar="HOST:PORT", help="The token port to join.")
@click.pass_obj
def create(
    opts: Options,
    given: str | None,
    ttl: float,
    description: str,
    usages: str,
    groups: str,
    print_join_command: bool,
    ca_cert: str,
    join_address: str,
) -> None:
    """Create a bootstrap token and print it (or the join command line)."""
    usage_list, group_list = parse_list(usages), parse_list(groups)
    try:
        check_create_flags(usage_list, group_list)
        parsed, line = prepare(opts, given, print_join_command, ca_cert, join_address)
    except (CommandError, certs.CertError) as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    except OSError as err:
        context.echo_err(f"error: {err.filename}: {err.strerror or err}")
        raise click.exceptions.Exit(1) from None
    secret = bt.new_token_secret(
        parsed,
        ttl=datetime.timedelta(seconds=ttl),
        description=description,
        usages=usage_list,
        extra_groups=group_list,
    )

    async def run(client: Client) -> int:
        await create_token(client, secret)
        click.echo(line)
        return 0

    context.exit_with(context.run(opts, run))


@token.command("list")
@click.pass_obj
def list_cmd(opts: Options) -> None:
    """List the bootstrap tokens with their TTL, usages and groups."""
    context.exit_with(context.run(opts, list_tokens))


@token.command("delete")
@click.argument("ids", nargs=-1, required=True, metavar="ID|TOKEN...")
@click.pass_obj
def delete(opts: Options, ids: tuple[str, ...]) -> None:
    """Delete bootstrap tokens by id (abcdef) or whole token."""
    context.exit_with(context.run(opts, lambda client: delete_tokens(client, ids)))
