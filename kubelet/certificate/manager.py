"""Client certificate rotation: client-go's certificate manager, for the kubelet's own client.

A client certificate is a login that expires (a year from `pki init`, what
the signer grants from a CSR). The kubelet renews its own before that day,
without a restart and without the bootstrap token -- its current certificate
is still good, so it asks as itself, system:node:NAME:

    deadline = notBefore + lifetime * uniform(0.7, 0.9)

Worked example: a certificate valid from 1 May for 365 days is renewed on a
random day between 10 Jan and 21 Mar the next year -- late enough to use most
of it, early enough that a signer down for weeks is no emergency, and at a
different moment on every node, so a fleet bootstrapped the same morning does
not renew in the same minute. Kubernetes draws the same 70-90% window.

At the deadline (`rotate`): a new ECDSA key (never the old one: a key that
leaked with the old certificate must not stay good), a CSR for CN
system:node:NAME, O system:nodes sent through the kubelet's own client, the
wait for the signer (bootstrap.request_node_certificate), then

    1. the pair goes to cert-dir (store.py: dated file, `current` link);
    2. the client dials every new call with it (Client.use_credentials);
    3. the kubeconfig is written again, naming the store's current pair, so
       a restarted kubelet starts from the new certificate (a kubeconfig
       that embedded its certificate, as `pki init` writes them, becomes one
       that names cert-dir's file).

Streams already open (the informers' watches) keep the connection they were
authenticated on until they end -- when the server restarts or the network
blips, which makes them re-dial with the new certificate. Kubernetes closes
those connections at once to force that; grpc.aio cancels a closed channel's
calls as if their tasks had been cancelled, which would end the informers
instead of restarting them, so tinykube leaves them be and closes the old
channels when the kubelet stops.

A failed renewal (no signer, the API server away, a Denied request) is
logged and retried after 2 s, doubling up to 5 minutes; the current
certificate keeps working meanwhile, and the loop never ends the kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import random
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from apimachinery import certs, errors
from apimachinery.channel import Connection, Credentials
from apimachinery.client import Client
from apimachinery.kubeconfig import ClientConfig
from kubelet.certificate.bootstrap import request_node_certificate, write_kubeconfig
from kubelet.certificate.csr import CertificateRequestError
from kubelet.certificate.store import FileStore

log = logging.getLogger(__name__)

ROTATION_WINDOW = (0.7, 0.9)
RENEW_WAIT = 900.0  # how long one renewal waits for the signer (client-go: 15 minutes)
RETRY_INITIAL, RETRY_MAX = 2.0, 300.0


def rotation_deadline(cert: x509.Certificate, fraction: float) -> datetime.datetime:
    """notBefore + `fraction` of the lifetime: when this certificate should be renewed."""
    start, end = certs.validity_window(cert)
    return start + (end - start) * fraction


class CertificateManager:
    """Renews the kubelet's client certificate before it expires and moves the client onto it."""

    def __init__(
        self,
        client: Client,
        config: ClientConfig,
        store: FileStore,
        node_name: str,
        *,
        kubeconfig_path: str | Path,
        jitter: Callable[[], float] = random.random,
        renew_wait: float = RENEW_WAIT,
    ) -> None:
        if config.cert_pem is None:
            raise ValueError("certificate rotation needs a client certificate in the kubeconfig")
        self.client = client
        self.config = config
        self.store = store
        self.node_name = node_name
        self.kubeconfig_path = Path(kubeconfig_path)
        self.cert = certs.load_cert_pem(config.cert_pem)
        self.renew_wait = renew_wait
        self._jitter = jitter
        self._retired: list[Connection] = []

    def next_deadline(self) -> datetime.datetime:
        low, high = ROTATION_WINDOW
        return rotation_deadline(self.cert, low + (high - low) * self._jitter())

    async def run(self) -> None:
        """Renew at each deadline until cancelled; failures are retried with backoff."""
        while True:
            deadline = self.next_deadline()
            log.info(
                "client certificate rotation scheduled",
                extra={"node": self.node_name, "deadline": deadline.isoformat()},
            )
            now = datetime.datetime.now(datetime.timezone.utc)
            await asyncio.sleep(max(0.0, (deadline - now).total_seconds()))
            delay = RETRY_INITIAL
            while True:
                try:
                    await self.rotate()
                    break
                except (CertificateRequestError, certs.CertError, errors.StatusError) as err:
                    log.warning(
                        "client certificate rotation failed",
                        extra={"node": self.node_name, "error": str(err), "retry_in": delay},
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def rotate(self) -> certs.CertKeyPair:
        """A new key and certificate, asked for as the node; then client and kubeconfig use it."""
        key = certs.generate_key("ecdsa")
        pair = await request_node_certificate(
            self.client, self.store, self.node_name, key=key, timeout=self.renew_wait
        )
        cert_pem, key_pem = certs.encode_cert_pem(pair.cert), certs.encode_key_pem(pair.key)
        credentials = self.config.credentials() or Credentials(ca_pem=self.config.ca_pem)
        credentials = dataclasses.replace(credentials, cert_pem=cert_pem, key_pem=key_pem)
        self._retired.append(self.client.use_credentials(credentials))
        self.config = dataclasses.replace(self.config, cert_pem=cert_pem, key_pem=key_pem)
        write_kubeconfig(self.kubeconfig_path, self.config.server, self.config.ca_pem, self.store)
        self.cert = pair.cert
        _, not_after = certs.validity_window(pair.cert)
        log.info(
            "client certificate rotated",
            extra={"node": self.node_name, "expires": not_after.isoformat()},
        )
        return pair

    async def close(self) -> None:
        """Close the connections earlier certificates opened."""
        retired, self._retired = self._retired, []
        for connection in retired:
            with contextlib.suppress(Exception):
                await connection.close()
