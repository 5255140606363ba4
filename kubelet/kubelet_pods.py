"""What the kubelet adds to a pod's containers beyond the spec's own volumes (Kubernetes'
kubelet_pods.go: makeMounts' /etc/hosts, ensureHostsFile, and the objects that
makeEnvironmentVariables reads for envFrom).

The managed /etc/hosts. The kubelet writes one hosts file per pod,
`<root-dir>/pods/<uid>/etc-hosts`, and bind-mounts it at /etc/hosts in every
container (unless the container mounts something there itself), so all the
pod's containers see the same names and the runtime's own hosts file is not
used. For a pod `web-0` with hostname `web-0`, subdomain `web` in namespace
`shop`, IP 10.244.1.7 and `hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local,
bar]}]`:

    # Kubernetes-managed hosts file.
    127.0.0.1	localhost
    ::1	localhost ip6-localhost ip6-loopback
    fe00::0	ip6-localnet
    fe00::0	ip6-mcastprefix
    fe00::1	ip6-allnodes
    fe00::2	ip6-allrouters
    10.244.1.7	web-0.web.shop.svc.cluster.local	web-0

    # Entries added by HostAliases.
    10.1.2.3	foo.local	bar

A hostNetwork pod gets the node's own /etc/hosts under the header
`# Kubernetes-managed hosts file (host network).`, then the same aliases. The
file is rewritten in place (not replaced) each time a container is created, so
the containers already running see the new content through their bind mount.

envFrom's objects. The volume manager reads the ConfigMaps and Secrets that
`env[].valueFrom` and the volumes name; `read_env_from` reads those that only
`envFrom` names, into the same PodInputs, with the same rules: NotFound is
"absent" (an `optional` reference tolerates it), any other API error a
CreateContainerConfigError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from apimachinery import errors as api_errors
from apimachinery import scheme
from kubelet.errors import ContainerConfigError
from kubelet.runtime.interface import Mount
from kubelet.volume_manager import ObjectGetter, PodInputs, Referenced, VolumeManager
from protos import core_pb2

ETC_HOSTS = "/etc/hosts"
HOSTS_FILE = "etc-hosts"  # in the pod's directory
MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
_LOCAL = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def host_aliases_entries(aliases: Sequence[core_pb2.HostAlias]) -> str:
    """The HostAliases section: one line per alias, its names tab-separated."""
    if not aliases:
        return ""
    lines = "".join(f"{a.ip}\t{chr(9).join(a.hostnames)}\n" for a in aliases)
    return "\n# Entries added by HostAliases.\n" + lines


def hostname_and_domain(pod: core_pb2.Pod, cluster_domain: str) -> tuple[str, str]:
    """GeneratePodHostNameAndDomain: the hostname, and `<subdomain>.<ns>.svc.<domain>`."""
    hostname = (pod.spec.hostname or pod.metadata.name)[:63].rstrip("-.")
    domain = ""
    if pod.spec.subdomain:
        namespace = pod.metadata.namespace or "default"
        domain = f"{pod.spec.subdomain}.{namespace}.svc.{cluster_domain.strip('.')}"
    return hostname, domain


def hosts_file_content(
    pod: core_pb2.Pod, pod_ips: Sequence[str], cluster_domain: str, node_hosts: str = ""
) -> str:
    """The pod's hosts file (the module docstring's example); `node_hosts` is the node's
    /etc/hosts, used for a hostNetwork pod."""
    aliases = host_aliases_entries(list(pod.spec.host_aliases))
    if pod.spec.host_network:
        return MANAGED_HEADER_HOST_NETWORK + node_hosts + aliases
    hostname, domain = hostname_and_domain(pod, cluster_domain)
    names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
    own = "".join(f"{ip}\t{names}\n" for ip in pod_ips if ip)
    return MANAGED_HEADER + _LOCAL + own + aliases


def _write_in_place(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:  # truncate and write: the same inode stays mounted
        f.write(content)
    path.chmod(0o644)


async def hosts_mount(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    pod_dir: Path,
    pod_ips: Sequence[str],
    cluster_domain: str,
    node_hosts_path: str = ETC_HOSTS,
) -> Mount | None:
    """makeHostsMount: write the pod's hosts file, and the mount that puts it at /etc/hosts.

    None when the container mounts its own /etc/hosts, or when a pod network
    pod has no IP yet (nothing to name).
    """
    if any(vm.mount_path.rstrip("/") == ETC_HOSTS for vm in spec.volume_mounts):
        return None
    if not pod.spec.host_network and not any(pod_ips):
        return None
    node_hosts = ""
    if pod.spec.host_network:
        node_hosts = await asyncio.to_thread(Path(node_hosts_path).read_text)
    content = hosts_file_content(pod, pod_ips, cluster_domain, node_hosts)
    path = pod_dir / HOSTS_FILE
    await asyncio.to_thread(_write_in_place, path, content)
    return Mount(ETC_HOSTS, str(path), False)


async def etc_hosts(
    volumes: VolumeManager,
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    pod_ip: str,
    cluster_domain: str,
) -> tuple[Mount, ...]:
    """The /etc/hosts mount for a container of the pod, when the kubelet keeps files on the
    node (not on a hollow node, whose runtime starts nothing)."""
    if not volumes.on_disk:
        return ()
    pod_dir = volumes.pod_dir(pod.metadata.uid)
    mount = await hosts_mount(pod, spec, pod_dir, [pod_ip], cluster_domain)
    return () if mount is None else (mount,)


def env_from_names(pod: core_pb2.Pod) -> tuple[set[str], set[str]]:
    """The ConfigMaps and Secrets the pod's containers' envFrom name."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for spec in [*pod.spec.init_containers, *pod.spec.containers]:
        for source in spec.env_from:
            if source.HasField("config_map_ref"):
                configmaps.add(source.config_map_ref.name)
            elif source.HasField("secret_ref"):
                secrets.add(source.secret_ref.name)
    return configmaps, secrets


async def _read(
    get_object: ObjectGetter, kind: type[Referenced], ns: str, name: str
) -> Referenced | None:
    try:
        return await get_object(kind, ns, name)
    except api_errors.NotFound:
        return None
    except api_errors.StatusError as exc:
        resource = scheme.for_message(kind).resource
        raise ContainerConfigError(f"cannot read {resource} {ns}/{name}: {exc}") from exc


async def read_env_from(
    pod: core_pb2.Pod, get_object: ObjectGetter | None, inputs: PodInputs
) -> None:
    """Add to `inputs` the envFrom objects it does not hold yet (absent ones stay out)."""
    if get_object is None:
        return
    namespace = pod.metadata.namespace
    cm_names, secret_names = env_from_names(pod)
    for name in sorted(cm_names - inputs.configmaps.keys()):
        cm = await _read(get_object, core_pb2.ConfigMap, namespace, name)
        if cm is not None:
            inputs.configmaps[name] = {**cm.binary_data, **cm.data}
    for name in sorted(secret_names - inputs.secrets.keys()):
        secret = await _read(get_object, core_pb2.Secret, namespace, name)
        if secret is not None:
            inputs.secrets[name] = {**secret.data, **secret.string_data}
