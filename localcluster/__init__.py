"""A whole cluster on one host (kind's counterpart), and the smaller worlds tests and benches share.

    cluster.py, node.py, ...   `tinykube up` / `down`: namespaces as nodes, a runtime and a
                               kubelet per node, a local registry; demo.py is `make demo`
    netns.py                   network namespaces as machines on an underlay bridge
    netcluster.py              the network alone on those nodes: API server, netplugin
                               agents, pods wired by tinykube-cni (network tests, benches)
    hostbridge.py              a private pod network on the host for one runtime under test
    processes.py               tinykube's own processes started from Python

The network tests and the benchmarks build on these, never the other way round.
"""
