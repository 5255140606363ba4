"""Container probes: liveness, readiness and startup (Kubernetes' pkg/kubelet/prober).

prober.py   one probe attempt: httpGet, tcpSocket, exec -> ProbeOutcome
worker.py   one worker per (pod, container, probe kind): timing and thresholds
manager.py  the workers of every pod, their results, and what they drive:
            readiness -> the Ready / ContainersReady conditions;
            liveness and startup failures -> the container is killed and
            restarted by the runtime manager (computePodActions)
"""
