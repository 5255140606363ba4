"""`tinykube certificate approve|deny NAME...`: decide a CertificateSigningRequest by hand.

kubectl/pkg/cmd/certificates. The csrapproving controller approves only the
kubelet client requests it recognizes (a bootstrapper's, a node renewing its
own); everything else waits in Pending for a human, who looks at `tinykube
get csr` (who asks: REQUESTOR; for what: SIGNERNAME) and decides:

    $ tinykube get csr
    NAME    AGE   SIGNERNAME                            REQUESTOR   REQUESTEDDURATION   CONDITION
    alice   5s    kubernetes.io/kube-apiserver-client   alice       <none>              Pending
    $ tinykube certificate approve alice
    certificatesigningrequest.certificates.k8s.io/alice approved

A decision is a condition written through UpdateStatus (Kubernetes writes
it through the /approval subresource): Approved with reason KubectlApprove,
or Denied with reason KubectlDeny, each with kubectl's message. As kubectl
does:

* a CSR that already has the condition is left as it is and reported the
  same way (approving twice is no error);
* approving a denied CSR, or denying an approved one, is refused by the
  server (Approved and Denied are mutually exclusive and never removed);
* a Conflict (someone wrote first) re-reads and tries again;
* each NAME is handled on its own: one that does not exist is reported
  (`Error from server (NotFound): ...`) and the others still go; the exit
  code is 1 if any failed.

The signer (csrsigning) issues the certificate of an approved request;
`tinykube get csr` then shows `Approved,Issued`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from apimachinery import csr as csrs
from apimachinery import errors
from apimachinery.client import retry_on_conflict
from cli import context
from cli.context import Options, describe_error, echo_err
from protos import certificates_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

CSR = certificates_pb2.CertificateSigningRequest
RESOURCE = "certificatesigningrequest.certificates.k8s.io"

# (condition type, reason, message, the word printed): kubectl's.
DECISIONS = {
    "approve": (
        csrs.APPROVED,
        "KubectlApprove",
        "This CSR was approved by tinykube certificate approve.",
        "approved",
    ),
    "deny": (
        csrs.DENIED,
        "KubectlDeny",
        "This CSR was denied by tinykube certificate deny.",
        "denied",
    ),
}


async def decide(client: Client, name: str, verb: str) -> None:
    """Give CSR `name` the condition of `verb` (approve/deny) unless it has it already."""
    kind, reason, message, _ = DECISIONS[verb]

    async def once() -> None:
        csr = await client.get(CSR, name)
        if csrs.find_condition(csr, kind) is not None:
            return
        csrs.add_condition(csr, kind, reason, message)
        await client.update_status(csr)

    await retry_on_conflict(once)


async def decide_all(client: Client, names: tuple[str, ...], verb: str) -> int:
    """Decide each name in turn; 1 if any could not be decided."""
    code = 0
    word = DECISIONS[verb][3]
    for name in names:
        try:
            await decide(client, name, verb)
        except errors.StatusError as err:
            echo_err(describe_error(err, client.server))
            code = 1
            continue
        click.echo(f"{RESOURCE}/{name} {word}")
    return code


@click.group("certificate")
def certificate() -> None:
    """Approve or deny certificate requests."""


def _decision_command(verb: str, summary: str) -> click.Command:
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @click.pass_obj
    def command(opts: Options, names: tuple[str, ...]) -> None:
        context.exit_with(context.run(opts, lambda c: decide_all(c, names, verb)))

    command.__doc__ = summary
    return certificate.command(verb)(command)


approve = _decision_command("approve", "Approve certificate signing requests: the signer issues.")
deny = _decision_command("deny", "Deny certificate signing requests: they are never issued.")
