"""tinykube-cni: the CNI plugin that wires each pod into its node's bridge.

The counterpart of the CNI project's `bridge` + `host-local` plugins, in one
executable that containerd's CRI plugin (or our kubelet, for Docker) runs for
every pod sandbox. Modules:

    main.py     the executable: CNI_* environment + config on stdin -> command ->
                result or error JSON on stdout, logs on stderr
    config.py   the network configuration: render_conflist/write_conflist for the
                node agent, parse_netconf for each call (each bad field named)
    plugin.py   ADD / DEL / CHECK: the veth pair, the pod's eth0, address and route;
                a failed ADD undoes what it did
    bridge.py   the node's bridge tk0 (ensure_bridge) and its ports (hairpin on)
    ipam.py     addresses from the node's podCIDR, reserved on disk, one file each
    result.py   the CNI result object, in the caller's cniVersion
    install.py  links tinykube-cni and loopback into containerd's CNI bin_dir
    errors.py   the CNI error codes

This package's __init__ imports nothing: the executable runs once per pod and
its start-up time is part of every pod's start-up time.
"""
