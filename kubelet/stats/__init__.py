"""The kubelet's resource stats: what `kubectl top` shows, read from cgroups (pkg/kubelet/stats).

Kubernetes' pipeline, and where each step lives here:

    cgroups (per container)    cadvisor reads them        cgroups.py, procfs.py
    Summary API on the kubelet /stats/summary             provider.py, summary.py,
                                                          servicer.py (gRPC KubeletStats)
    metrics-server             scrapes every kubelet,     folded into the API server:
                               serves metrics.k8s.io      apiserver/metrics.py
    kubectl top                                           cli/cmd_top.py

    cgroups.py   a process's cgroup (v2, v1, hybrid) and its counters
    procfs.py    /proc: the machine's memory, boot time, single processes, netns
    rates.py     usageNanoCores from two readings of a cumulative counter
    provider.py  StatsProvider: one collection of the node, the Summary on demand
    summary.py   a collection -> the Summary message
    servicer.py  the KubeletStats gRPC service, authorized as logs and exec are
"""
