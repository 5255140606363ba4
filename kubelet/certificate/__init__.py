"""The kubelet's client certificate: TLS bootstrapping and rotation (pkg/kubelet/certificate).

A kubelet authenticates to the API server with a client certificate whose
subject is its identity, CN system:node:NAME and O system:nodes. A new node
has no such certificate; it has what `tinykube join` wrote: a *bootstrap
kubeconfig* holding the cluster's CA and a short-lived bootstrap token, good
for one thing -- asking the cluster for a certificate. Kubernetes calls the
exchange TLS bootstrapping, and tinykube follows it step by step:

    tinykube kubelet --kubeconfig /etc/tinykube/kubelet.conf \\
        --bootstrap-kubeconfig /etc/tinykube/bootstrap-kubelet.conf \\
        --cert-dir /var/lib/kubelet/pki ...

    1. kubelet.conf exists and its certificate has not expired: use it, done.
    2. else make an ECDSA key, kept in cert-dir as kubelet-client.key.tmp
       (0600), so that a kubelet restarted while it waits asks again for
       the same key rather than leaving a trail of requests (a denied
       request drops it: the next start asks anew);
    3. send a CertificateSigningRequest (csr.py) with the bootstrap token:
       signerName kubernetes.io/kube-apiserver-client-kubelet, a PKCS#10
       request for CN system:node:NAME, O system:nodes, usages "digital
       signature" and "client auth". Its name is a digest of the request,
       so the same key always makes the same object;
    4. watch it until the signer has put a certificate in its status (or
       someone Denied it, or the signer Failed: the kubelet stops with that
       condition's message);
    5. write cert and key to cert-dir (store.py, as client-go's FileStore):
       kubelet-client-2024-05-01-10-00-00.pem (0600, certificate then key)
       and the link kubelet-client-current.pem pointing at it;
    6. write kubelet.conf: the bootstrap kubeconfig's CA, the certificate
       port of the same host, and client-certificate / client-key naming
       kubelet-client-current.pem -- the file Kubernetes' kubeconfig names.

Which server: the bootstrap kubeconfig names the token port (6444 by
convention), where requests carry a bearer token; the kubelet's own client
belongs on the certificate port, which tinykube's API server serves apart
(grpcio cannot ask for a client certificate optionally). So kubelet.conf's
server is the bootstrap server's host with port 6443 -- the fixed convention
`tinykube pki init` and `tinykube apiserver` share, chosen over a second
cluster entry in the bootstrap kubeconfig (which `join` would have to learn
from somewhere) because it keeps the file kubeadm's shape.

Rotation (manager.py, client-go's certificate manager): a certificate is
renewed at a random point between 70% and 90% of its lifetime, with a new
key, the request sent as the node itself (its current certificate still
works). The new pair goes to cert-dir as in step 5, the client dials new
calls with it, and kubelet.conf is written again, so a restarted kubelet
starts with the new certificate.

Modules:

    store.py          the files in cert-dir
    csr.py            one CertificateSigningRequest: create it, wait for its certificate
    bootstrap.py      steps 1-6: load_client_cert
    manager.py        rotation: CertificateManager
    client_config.py  the flags' client: build_client (bootstrap, load, rotate)
"""
