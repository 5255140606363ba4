"""The names of the environment variables that tell a client where its API server is.

client-go keeps `$KUBECONFIG`'s name in its clientcmd package
(`clientcmd.RecommendedConfigPathEnvVar`), not in kubectl: every client --
kubectl, a controller run out of cluster, a test harness -- resolves the same
chain, so the names belong to the client side of the shared machinery. This
module is tinykube's clientcmd, and holds only the names.

Two packages need them:

* `cli.config` reads them to resolve the server, in this precedence (its
  docstring has the whole chain):

      --server HOST:PORT          the flag
      $TINYKUBE_SERVER            an address, per shell
      --cluster / $TINYKUBE_CLUSTER   a local cluster of `tinykube up`, by name
      $KUBECONFIG                 a kubeconfig, as kubectl reads it
      $TINYKUBE_CONFIG            a config file the user named

* `localcluster.processes` writes them: a `tinykube` child aimed at a local
  cluster gets `$TINYKUBE_CLUSTER` and loses `$TINYKUBE_SERVER` (which would
  outrank it), `$TINYKUBE_CONFIG` and `$KUBECONFIG`, so nothing set in the
  caller's shell can send it to another server.

`localcluster` must not import `cli` (the users' tools sit beside each other,
over the components), and `apimachinery` is what both stand on, so the names
live here. Variables that only one package reads stay with it:
`$TINYKUBE_CLUSTERS_DIR` in localcluster.clusterstate, the local cluster's
`$TINYKUBE_KUBELET_ARGS` / `$TINYKUBE_APISERVER_ARGS` in localcluster.nodeconfig.
"""

from __future__ import annotations

ENV_SERVER = "TINYKUBE_SERVER"
"""An API server address (`HOST:PORT` or `unix:PATH`); wins over everything but `--server`."""

ENV_CLUSTER = "TINYKUBE_CLUSTER"
"""The name of a local cluster made by `tinykube up`; its state file gives the address."""

ENV_CONFIG = "TINYKUBE_CONFIG"
"""A config file to read instead of ~/.tinykube/config (an error if it does not exist)."""

ENV_KUBECONFIG = "KUBECONFIG"
"""kubectl's own variable: kubeconfig files, separated by ':' (tinykube reads the first)."""
