"""tinykube-cni: the CNI plugin that wires each pod into its node's bridge.

The counterpart of the CNI project's `bridge` + `host-local` plugins, in one
executable that containerd's CRI plugin (or our kubelet, for Docker) runs for
every pod sandbox. Modules:

    thin.py     the `tinykube-cni` containerd runs: a stdlib-only client that hands the
                call to the node's agent over a unix socket (or execs the full plugin)
    server.py   the agent's side of that socket: main.run in-process, a thread per call
    main.py     the full plugin (`tinykube-cni-full`): CNI_* environment + config on
                stdin -> command -> result or error JSON on stdout, logs on stderr
    config.py   the network configuration: render_conflist/write_conflist for the
                node agent, parse_netconf for each call (each bad field named)
    plugin.py   ADD / DEL / CHECK: the veth pair, the pod's eth0, address and route;
                a failed ADD undoes what it did
    threadns.py a netlink socket in the pod's namespace, made by setns(2) on one thread
    bridge.py   the node's bridge tk0 (ensure_bridge) and its ports (hairpin on)
    ipam.py     addresses from the node's podCIDR, reserved on disk, one file each
    result.py   the CNI result object, in the caller's cniVersion
    install.py  writes the thin tinykube-cni, links tinykube-cni-full and loopback into
                containerd's CNI bin_dir
    errors.py   the CNI error codes

This package's __init__ imports nothing: the executable runs once per pod and
its start-up time is part of every pod's start-up time (thin.py imports this
package, and only the standard library besides).
"""
