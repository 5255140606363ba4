# mypy: disable-error-code="no-untyped-call,arg-type,union-attr"
"""A user's script with the official Python client, run by test_python_client_cluster.py.

It runs inside the cluster's underlay namespace (where a machine beside the
nodes would be) with the cluster's admin kubeconfig, and prints one line per
step for the test to check: create a Deployment, list its pods by label,
watch until two are Running, read a pod's log, patch the Deployment, delete it.
"""

from __future__ import annotations

import sys

from kubernetes import client, config, watch

NAME = "pyweb"


def deployment() -> dict[str, object]:
    labels = {"app": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
            },
        },
    }


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    apps, core = client.AppsV1Api(), client.CoreV1Api()
    created = apps.create_namespaced_deployment("default", deployment())
    print("created", created.metadata.name, flush=True)
    listed = core.list_namespaced_pod("default", label_selector=f"app={NAME}")
    running: set[str] = set()
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        "default",
        label_selector=f"app={NAME}",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=120,
    ):
        pod = event["object"]
        if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
            running.add(pod.metadata.name)
        if len(running) == 2:
            stream.stop()
    print("running", len(running), flush=True)
    name = sorted(running)[0]
    log = core.read_namespaced_pod_log(name, "default", container="web")
    print("log", type(log).__name__, flush=True)
    apps.patch_namespaced_deployment(NAME, "default", {"spec": {"replicas": 1}})
    print("replicas", apps.read_namespaced_deployment(NAME, "default").spec.replicas, flush=True)
    apps.delete_namespaced_deployment(NAME, "default")
    print("deleted", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
