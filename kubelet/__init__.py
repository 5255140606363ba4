"""The kubelet: the node agent that makes pods bound to its node actually run.

Kubernetes' kubelet, in modules named after its own files so a reader can
put them side by side:

    kubelet.py             Kubelet: startup order, the sync steps, housekeeping (kubelet.go)
    config.py              KubeletConfig: capacity, reserved, timings, labels, taints
    nodestatus.py          registration and node status (kubelet_node_status.go, setters.go)
    lease.py               the node Lease heartbeat (nodelease)
    sources.py             pods bound to this node, and this Node (config/apiserver.go)
    pod_workers.py         one serialised worker per pod (pod_workers.go)
    kuberuntime_manager.py sandbox + containers through the runtime (kuberuntime_manager.go)
    pod_actions.py         what one sync must do: computePodActions' podActions
    init_containers.py     init containers, one at a time, each to success before the app
    kuberuntime_container.py graceful stop with preStop; restartPolicy (kuberuntime_container.go)
    image_manager.py       pull policy, pulls and ImagePullBackOff (images/image_manager.go)
    volume_manager.py      a pod's volumes under --root-dir, its ConfigMaps/Secrets (volumemanager/)
    volume_plugins.py      emptyDir, hostPath, configMap, secret, downwardAPI, projected (volume/*)
    volume_projection.py   what the API-data volumes hold: keys, fieldRefs, resources
    atomic_writer.py       ..data swapped by rename: files change under running pods (util/)
    subpath.py             subPaths opened without following symlinks, pinned (util/subpath)
    mount.py               tmpfs and bind mounts on the node, and a fake (k8s.io/mount-utils)
    backoff.py             CrashLoopBackOff and ImagePullBackOff (util/flowcontrol/backoff.go)
    pleg.py                relist the runtime, wake pods whose containers changed (pleg/generic.go)
    prober/                liveness, readiness, startup probes (prober/)
    status.py              pod status: generate, and write only on change (status_manager.go)
    server.py              logs and exec for the apiserver's proxy (server/server.go)
    streams.py             exec with stdin/tty and port-forward streams (server/streaming)
    stats/                 cgroup statistics, the Summary `top` reads (server/stats, cadvisor)
    runtime/               ContainerRuntime, CRI-shaped; `fake` (hollow node); containerd, docker
    errors.py              the package's errors

The data path for one pod, from the scheduler's Bind to `Running`:

    informer (spec.nodeName=node1) ADDED pod
      -> PodWorkers.update_pod -> worker(uid) -> Kubelet.sync_pod
           runtime step: volumes + ConfigMaps/Secrets, RunPodSandbox (IP from the podCIDR),
                         PullImage, runAsNonRoot check, Create/StartContainer (env valueFrom,
                         mounts, limits, security context: runtime/security_context.py)
           status step:  PodStatus{phase: Running, podIP, conditions, containerStatuses}
      -> StatusManager: UpdateStatus (only if it differs from what the server has)

and afterwards, for its whole life:

    PLEG relist (1 s): container c1 exited  -> wake the pod's worker -> sync_pod:
      restartPolicy + CrashLoopBackOff decide; restart (attempt + 1) or wait
    probe worker: liveness failed 3 times   -> wake -> kill c1 ("failed liveness
      probe, will be restarted") -> restarted as above
    probe worker: readiness flips           -> wake -> status Ready / ContainersReady

The kubelet talks to the cluster only through apimachinery.client (never
importing apiserver/), and to containers only through runtime.ContainerRuntime,
so the same code drives a hollow node, containerd and Docker.
"""
