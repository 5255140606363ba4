"""The kubelet's client certificate on disk: client-go's certificate FileStore.

The directory is `--cert-dir` (/var/lib/kubelet/pki by default), laid out as
Kubernetes lays it out, so a reader can `ls` theirs beside ours:

    kubelet-client-2024-05-01-10-00-00.pem   certificate, then its key (0600)
    kubelet-client-2024-11-20-03-12-45.pem   the one after a rotation
    kubelet-client-current.pem -> kubelet-client-2024-11-20-03-12-45.pem
    kubelet-client.key.tmp                   a key whose certificate is on its way

One file holds certificate and key because the two must change together: a
reader of the link sees the old pair or the new one, never a new
certificate with an old key. Each dated file is written through a rename,
and the link is replaced by renaming a new link over it (rename is atomic),
so a crash at any point leaves a usable pair. Old dated files are kept, as
Kubernetes keeps them (a manual rollback is `ln -sf`).

The kubeconfig names kubelet-client-current.pem for both client-certificate
and client-key; the loader reads the certificate block and the key block of
the same file.

`pending_key` is the key of a bootstrap request in flight
(kubelet-client.key.tmp, 0600): made once and reused until the certificate
arrives, so a restarted kubelet sends the same request again.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509

from apimachinery import certs

PREFIX = "kubelet-client"
CURRENT = f"{PREFIX}-current.pem"
PENDING_KEY = f"{PREFIX}.key.tmp"


class FileStore:
    """The client certificate and key in one directory: dated files and a `current` link."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def current_path(self) -> Path:
        """The link every reader opens (absolute, as the kubeconfig names it)."""
        return self.directory.absolute() / CURRENT

    def current(self) -> certs.CertKeyPair | None:
        """The current pair, or None when there is none; CertError if the file is damaged."""
        path = self.current_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            pair = certs.CertKeyPair(certs.load_cert_pem(data), certs.load_key_pem(data))
        except certs.CertError as err:
            raise certs.CertError(f"{path}: {err}") from None
        if certs.spki_der(pair.cert.public_key()) != certs.spki_der(pair.key.public_key()):
            raise certs.CertError(f"{path}: the certificate is not for the key beside it")
        return pair

    def update(self, cert: x509.Certificate, key: certs.PrivateKey) -> Path:
        """Write a new dated pair and point `current` at it; returns the dated file."""
        certs.ensure_dir(self.directory)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
        dated = self.directory / f"{PREFIX}-{stamp}.pem"
        certs.write_file(dated, certs.encode_cert_pem(cert) + certs.encode_key_pem(key), mode=0o600)
        link = self.directory / f".{CURRENT}.new"
        link.unlink(missing_ok=True)
        os.symlink(dated.name, link)
        os.replace(link, self.directory / CURRENT)
        return dated

    def pending_key(self) -> certs.PrivateKey:
        """The key of the request in flight: read if there is one, else made and kept (0600)."""
        path = self.directory / PENDING_KEY
        if path.exists():
            try:
                return certs.read_key(path)
            except certs.CertError:
                pass  # damaged (a crash mid-write of an older version): make another
        key = certs.generate_key("ecdsa")
        certs.write_key(path, key)
        return key

    def drop_pending_key(self) -> None:
        (self.directory / PENDING_KEY).unlink(missing_ok=True)


def still_valid(cert: x509.Certificate, *, now: datetime.datetime | None = None) -> bool:
    """True while `now` is inside the certificate's validity window."""
    at = now or datetime.datetime.now(datetime.timezone.utc)
    start, end = certs.validity_window(cert)
    return start <= at < end
