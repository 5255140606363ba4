#!/usr/bin/env bash
# verify.sh: does the seed manifest run, spread and serve on this cluster?
#
#   verify.sh [MANIFEST]            default /vagrant/examples/web-app.yaml
#
# Run on node1 after `vagrant up`, and by the local end-to-end tests against a
# `tinykube up` cluster: it talks to the cluster only through the tinykube CLI
# (which finds the cluster by its own config, $TINYKUBE_SERVER or
# $TINYKUBE_CLUSTER), plus the hooks below, so the same checks run on both.
#
# Checks, each printed as `ok` or `FAIL` with what went wrong:
#   1. the manifest applies, and VERIFY_REPLICAS pods of VERIFY_SELECTOR turn
#      Running and ready within VERIFY_TIMEOUT seconds;
#   2. one replica per node (when there are at least as many nodes);
#   3. from every node (a hostNetwork busybox probe pod pinned there): the
#      Service's ClusterIP VERIFY_REQUESTS times, every request answered. The
#      probes use the node's own network, which Pod Security's baseline level
#      refuses (and `default` enforces it), so they run in a namespace of
#      their own, VERIFY_PROBE_NAMESPACE, labelled for the privileged level --
#      as node-level debugging pods are kept out of the applications'
#      namespaces in Kubernetes;
#   4. through the ClusterIP every replica answered (its name in a response,
#      or a new line in its access log: nginx's default page names no pod);
#      then each replica's pod IP from every node;
#   5. a NodePort Service for the same pods answers on every node's
#      InternalIP, fetched with VERIFY_EXTERNAL (from outside the cluster when
#      the hook says so).
# Then the probe pods and the NodePort Service are deleted (the application
# and the empty probe namespace stay), and the last line is PASS, or FAIL with
# the failed checks; the exit code is 0 or 1.
#
# Hooks (environment):
#   TINYKUBE            the CLI command                 (default: tinykube)
#   VERIFY_EXTERNAL     fetch a URL from outside        (default: curl -fsS -m 5)
#                       e.g. "ip netns exec tk-ul curl -fsS -m 5" for a local cluster
#   PYTHON              reads the CLI's JSON            (default: python3)
#   VERIFY_SELECTOR     the app's pods                  (default: app=web-app)
#   VERIFY_SERVICE      the app's Service               (default: web-app-service)
#   VERIFY_REPLICAS     pods expected                   (default: 2)
#   VERIFY_POD_PORT     the pods' port                  (default: 80)
#   VERIFY_PROBE_IMAGE  the probe pods' image           (default: busybox:latest)
#   VERIFY_PROBE_NAMESPACE  the probe pods' namespace   (default: tinykube-verify)
#   VERIFY_REQUESTS     ClusterIP requests per node     (default: 20)
#   VERIFY_TIMEOUT      seconds to wait for pods        (default: 180)
#   VERIFY_RETRIES      tries for the first ClusterIP and each NodePort answer
#                       (the proxy's rules trail the objects)        (default: 15)
#   VERIFY_INTERVAL     seconds between tries and polls               (default: 1)
set -euo pipefail

manifest=${1:-/vagrant/examples/web-app.yaml}
read -r -a tk <<<"${TINYKUBE:-tinykube}"
read -r -a external <<<"${VERIFY_EXTERNAL:-curl -fsS -m 5}"
python=${PYTHON:-python3}
selector=${VERIFY_SELECTOR:-app=web-app}
service=${VERIFY_SERVICE:-web-app-service}
replicas=${VERIFY_REPLICAS:-2}
pod_port=${VERIFY_POD_PORT:-80}
probe_image=${VERIFY_PROBE_IMAGE:-busybox:latest}
probe_ns=${VERIFY_PROBE_NAMESPACE:-tinykube-verify}
requests=${VERIFY_REQUESTS:-20}
timeout=${VERIFY_TIMEOUT:-180}
retries=${VERIFY_RETRIES:-15}
interval=${VERIFY_INTERVAL:-1}

run_id=$(date +%s)-$$
probe_label=tinykube-verify
tkp=("${tk[@]}" -n "$probe_ns") # the CLI in the probes' namespace
nodeport_service=verify-nodeport-$run_id
failures=()
work=$(mktemp -d)

ok() { echo "ok    $*"; }
fail() {
  echo "FAIL  $*"
  failures+=("$*")
}
finish() {
  echo
  if ((${#failures[@]})); then
    echo "FAIL: ${#failures[@]} check(s) failed:"
    printf '  - %s\n' "${failures[@]}"
    exit 1
  fi
  echo "PASS"
  exit 0
}
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  "${tkp[@]}" delete pod -l "app=$probe_label" --ignore-not-found --now --no-wait >/dev/null 2>&1 || true
  "${tk[@]}" delete service "$nodeport_service" --ignore-not-found --no-wait >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# json FIELDS...: read a `tinykube get -o json` answer on stdin, print one line per object
# with the fields asked for (pod: name phase ip node ready; node: name ip; service:
# clusterip port nodeport).
json() {
  "$python" -c '
import json, sys
try:
    doc = json.load(sys.stdin)
except ValueError:  # the CLI failed and said why on its stderr
    sys.exit(1)
items = doc.get("items", []) if doc.get("kind") == "List" else [doc]
for o in items:
    meta, spec, status = o.get("metadata", {}), o.get("spec", {}), o.get("status", {})
    if meta.get("deletionTimestamp"):
        continue
    ports = spec.get("ports") or [{}]
    conds = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses", [])}
    fields = {
        "name": meta.get("name", ""),
        "phase": status.get("phase", ""),
        "ip": status.get("podIP") or addrs.get("InternalIP", ""),
        "node": spec.get("nodeName", ""),
        "ready": conds.get("Ready", "False"),
        "clusterip": spec.get("clusterIP", ""),
        "port": ports[0].get("port", ""),
        "nodeport": ports[0].get("nodePort", ""),
    }
    print(" ".join(str(fields[f]) or "-" for f in sys.argv[1:]))
' "$@"
}

# --- 1. apply, wait for the replicas
if "${tk[@]}" apply -f "$manifest" >"$work/apply.out" 2>&1; then
  ok "applied $manifest"
else
  fail "apply $manifest: $(tr '\n' ' ' <"$work/apply.out")"
  finish
fi

ready_pods() {
  "${tk[@]}" get pods -l "$selector" -o json 2>/dev/null | json name phase ip node ready |
    awk '$2 == "Running" && $3 != "-" && $5 == "True"'
}
deadline=$((SECONDS + timeout))
while :; do
  ready_pods >"$work/pods" || true
  (($(wc -l <"$work/pods") >= replicas)) && break
  if ((SECONDS >= deadline)); then
    fail "$replicas Running replicas of $selector within ${timeout}s (have: $(wc -l <"$work/pods"))"
    "${tk[@]}" get pods -o wide || true
    finish
  fi
  sleep "$interval"
done
ok "$replicas replicas of $selector Running and ready"
while read -r name _ ip node _; do
  echo "      $name $ip on $node"
done <"$work/pods"

# --- 2. one replica per node
if ! "${tk[@]}" get nodes -o json 2>"$work/nodes.err" | json name ip >"$work/nodes"; then
  fail "list the nodes: $(tr '\n' ' ' <"$work/nodes.err")"
  finish
fi
node_count=$(wc -l <"$work/nodes")
distinct=$(awk '{print $4}' "$work/pods" | sort -u | wc -l)
if ((node_count >= replicas && distinct < replicas)); then
  fail "one replica per node: $(awk '{printf "%s on %s; ", $1, $4}' "$work/pods")"
else
  ok "replicas spread over $distinct node(s) of $node_count"
fi

# --- the ClusterIP, and a NodePort Service for the same pods
"${tk[@]}" get service "$service" -o json 2>"$work/service.err" | json clusterip port \
  >"$work/service" || true
read -r cluster_ip port _ <"$work/service" || true
if [[ -z "${cluster_ip:-}" || "$cluster_ip" == - || -z "${port:-}" || "$port" == - ]]; then
  fail "service $service has a ClusterIP and a port: $(tr '\n' ' ' <"$work/service.err")"
  finish
fi
selector_yaml=$(tr ',' '\n' <<<"$selector" | sed -E 's/^([^=]+)=(.*)$/    \1: "\2"/')
"${tk[@]}" apply -f - >"$work/nodeport.out" 2>&1 <<EOF || true
apiVersion: v1
kind: Service
metadata:
  name: $nodeport_service
  labels:
    app: $probe_label
spec:
  type: NodePort
  selector:
$selector_yaml
  ports:
  - port: $port
    targetPort: $pod_port
EOF
node_port=$("${tk[@]}" get service "$nodeport_service" -o json 2>/dev/null | json nodeport || true)
if [[ -z "$node_port" || "$node_port" == - ]]; then
  fail "NodePort service $nodeport_service created: $(tr '\n' ' ' <"$work/nodeport.out")"
  finish
fi
ok "service $service at $cluster_ip:$port; NodePort $node_port on $nodeport_service"

# --- 3. probes: one hostNetwork pod per node, in a namespace that allows them
if ! "${tk[@]}" apply -f - >"$work/namespace.out" 2>&1 <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $probe_ns
  labels:
    pod-security.kubernetes.io/enforce: privileged
EOF
then
  fail "create namespace $probe_ns for the probes: $(tr '\n' ' ' <"$work/namespace.out")"
  finish
fi
probes=()
while read -r node _; do
  probe=verify-probe-$node-$run_id
  probes+=("$probe")
  if ! "${tkp[@]}" apply -f - >"$work/probe.out" 2>&1 <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $probe
  namespace: $probe_ns
  labels:
    app: $probe_label
spec:
  nodeName: $node
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: probe
    image: $probe_image
    command: ["sleep", "3600"]
EOF
  then
    fail "create probe pod $probe on $node: $(tr '\n' ' ' <"$work/probe.out")"
    finish
  fi
done <"$work/nodes"
deadline=$((SECONDS + timeout))
for probe in "${probes[@]}"; do
  until [[ "$("${tkp[@]}" get pod "$probe" -o json 2>/dev/null | json phase)" == Running ]]; do
    if ((SECONDS >= deadline)); then
      fail "probe pod $probe Running within ${timeout}s"
      finish
    fi
    sleep "$interval"
  done
done
ok "probe pods running: ${probes[*]}"

# in_probe PROBE HOST PORT COUNT: COUNT plain HTTP GETs of / from inside PROBE, with busybox
# nc (the local busybox's static wget crashes on every request); each answer is printed
# (headers and body), or FETCH-FAILED, then a line ===END===
in_probe() {
  # shellcheck disable=SC2016  # expanded by the probe's sh, not here
  "${tkp[@]}" exec "$1" -- sh -c '
    i=0
    while [ "$i" -lt "$3" ]; do
      out=$(printf "GET / HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" | nc -w 5 "$1" "$2" 2>&1)
      case "$out" in
        "HTTP/1."[01]" 200"*) echo "$out" ;;
        *) echo FETCH-FAILED ;;
      esac
      echo ===END===
      i=$((i + 1))
    done' sh "$2" "$3" "$4" </dev/null
}
access_lines() { "${tk[@]}" logs "$1" </dev/null 2>/dev/null | grep -c '"GET / ' || true; }
# fetch_ok PROBE HOST PORT: one request from PROBE's node answered (a failed exec is no answer)
fetch_ok() {
  local out
  out=$(in_probe "$1" "$2" "$3" 1 2>&1) || return 1
  [[ "$out" == *===END===* && "$out" != *FETCH-FAILED* ]]
}
probe_node() {
  local node=${1#verify-probe-}
  echo "${node%-"$run_id"}"
}

while read -r name _; do
  access_lines "$name" >"$work/before-$name"
done <"$work/pods"

# the ClusterIP, many times from every node; the proxy's rules may trail the Service a moment
url="http://$cluster_ip:$port/"
for probe in "${probes[@]}"; do
  node=$(probe_node "$probe")
  for _ in $(seq 1 "$retries"); do
    fetch_ok "$probe" "$cluster_ip" "$port" && break
    sleep "$interval"
  done
  in_probe "$probe" "$cluster_ip" "$port" "$requests" >"$work/cluster-$node" 2>&1 || true
  failed=$(grep -c FETCH-FAILED "$work/cluster-$node" || true)
  answered=$(grep -c ===END=== "$work/cluster-$node" || true)
  if ((failed == 0 && answered == requests)); then
    ok "from $node: ClusterIP $url answered $requests of $requests"
  else
    fail "from $node: ClusterIP $url answered $((answered - failed)) of $requests"
  fi
done

# --- 4. every replica answered through the ClusterIP (counted before any direct request)
while read -r name _; do
  before=$(cat "$work/before-$name")
  after=$(access_lines "$name")
  # grep reads the files itself: under pipefail, `cat | grep -q` fails whenever grep's
  # early exit (the first match) cuts cat off with SIGPIPE before its last write
  if grep -q -- "$name" "$work"/cluster-*; then
    ok "replica $name answered through the ClusterIP (named in a response)"
  elif ((after > before)); then
    ok "replica $name answered through the ClusterIP ($((after - before)) new access-log lines)"
  else
    fail "replica $name never answered through the ClusterIP (not named in a response, no new access-log line)"
  fi
done <"$work/pods"

# pod IPs: every node reaches every replica (the other node's across the overlay)
for probe in "${probes[@]}"; do
  node=$(probe_node "$probe")
  while read -r name _ ip pod_node _; do
    if fetch_ok "$probe" "$ip" "$pod_port"; then
      ok "from $node: pod $name at $ip (on $pod_node)"
    else
      fail "from $node: pod $name at $ip (on $pod_node)"
    fi
  done <"$work/pods"
done

# --- 5. the NodePort from outside, on every node's address
while read -r node address; do
  url="http://$address:$node_port/"
  success=0
  for _ in $(seq 1 "$retries"); do
    if "${external[@]}" "$url" >"$work/nodeport-$node" 2>&1 </dev/null; then
      success=1
      break
    fi
    sleep "$interval"
  done
  if ((success)); then
    ok "NodePort $url (node $node) from outside"
  else
    fail "NodePort $url (node $node) from outside: $(tail -c 200 "$work/nodeport-$node" | tr '\n' ' ')"
  fi
done <"$work/nodes"

finish
