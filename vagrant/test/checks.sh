#!/usr/bin/env bash
# The VM test's checks on the booted cluster (sourced by vm-e2e.sh after lib.sh).
# Commands run in the VMs over SSH with the configuration `vagrant ssh-config`
# prints (one vagrant process per call would cost seconds each).
set -euo pipefail

work=${work:?set by lib.sh}
NODE_IPS=(192.168.56.11 192.168.56.12)
NODEPORT=30080

ssh_config() {
  vagrant ssh-config >"$work/ssh-config" 2>/dev/null || die "vagrant ssh-config failed"
}

# on NODE COMMAND: run COMMAND (a shell line) as root on NODE; its stdout here.
on() {
  [[ -f "$work/ssh-config" ]] || ssh_config
  ssh -F "$work/ssh-config" -o ConnectTimeout=20 -o LogLevel=ERROR "$1" "sudo bash -c $(printf '%q' "$2")"
}

tk() { on node1 "tinykube $*"; }

# verify_pass WHEN: vagrant/verify.sh on node1, as the README tells users to run it.
verify_pass() {
  local log=$work/verify-${1// /-}.log
  echo "   \$ vagrant ssh node1 -c 'bash /vagrant/vagrant/verify.sh'   ($1)"
  vagrant ssh node1 -c 'VERIFY_TIMEOUT=600 bash /vagrant/vagrant/verify.sh' >"$log" 2>&1 || true
  sed 's/^/   | /' "$log"
  tail -n 1 "$log" | grep -qx PASS || die "verify.sh did not PASS ($1)"
}

# The nodes are Ready with their private addresses, not the NAT eth0's.
check_nodes_ready() {
  local table line
  table=$(tk get nodes -o wide)
  while read -r line; do echo "   $line"; done <<<"$table"
  for i in 0 1; do
    echo "$table" | awk -v n="node$((i + 1))" -v ip="${NODE_IPS[$i]}" \
      '$1 == n && $2 == "Ready" && index($0, ip) {found = 1} END {exit !found}' ||
      die "node$((i + 1)) is not Ready with INTERNAL-IP ${NODE_IPS[$i]}"
  done
}

# The VXLAN device of each node sits on eth1 with the node's private address, its
# forwarding entries name the other node's private address, and that address is
# reached through eth1: the overlay crosses between the two kernels on eth1.
check_overlay_on_eth1() {
  local i me peer details fdb
  for i in 0 1; do
    me=${NODE_IPS[$i]} peer=${NODE_IPS[$((1 - i))]}
    details=$(on "node$((i + 1))" "ip -d link show tinykube.1")
    grep -q "local $me dev eth1 " <<<"$details" ||
      die "node$((i + 1))'s tinykube.1 is not on eth1 with local $me: $details"
    fdb=$(on "node$((i + 1))" "bridge fdb show dev tinykube.1")
    grep -q "dst $peer " <<<"$fdb" || die "node$((i + 1))'s VXLAN has no entry for $peer: $fdb"
    on "node$((i + 1))" "ip route get $peer" | grep -q " dev eth1 " ||
      die "node$((i + 1)) does not reach $peer through eth1"
    echo "   node$((i + 1)): tinykube.1 local $me dev eth1, forwards to $peer over eth1"
  done
}

# access_lines: "POD COUNT" per web-app replica (lines in its nginx access log).
access_lines() {
  local pod
  for pod in $(tk get pods -l app=web-app -o name); do
    echo "${pod#*/} $(tk logs "${pod#*/}" | grep -c 'GET / ' || true)"
  done
}

# A NodePort Service for the replicas answers on both VMs' private addresses
# from this host, and between them every replica served.
check_nodeport_from_host() {
  local before after ip n manifest
  manifest="apiVersion: v1
kind: Service
metadata: {name: vm-e2e-nodeport}
spec:
  type: NodePort
  selector: {app: web-app}
  ports: [{port: 80, targetPort: 80, nodePort: $NODEPORT}]"
  on node1 "printf '%s\n' '$manifest' | tinykube apply -f -" | sed 's/^/   /'
  before=$(access_lines)
  for ip in "${NODE_IPS[@]}"; do
    for n in $(seq 1 20); do
      if ! curl -fsS -m 5 -o /dev/null "http://$ip:$NODEPORT/"; then
        ((n < 20)) || die "NodePort http://$ip:$NODEPORT/ did not answer this host"
        sleep 1
      fi
    done
    echo "   NodePort http://$ip:$NODEPORT/ answered this host"
  done
  after=$(access_lines)
  join <(sort <<<"$before") <(sort <<<"$after") | while read -r pod was now; do
    ((now > was)) || die "replica $pod served none of the NodePort requests"
    echo "   replica $pod served $((now - was)) of them"
  done
  tk delete service vm-e2e-nodeport >/dev/null
}

node_status() { tk get nodes | awk -v n="$1" '$1 == n {print $2}'; }

# check_reboot NODE: a real reboot (vagrant reload); the node goes NotReady, its units
# come back by themselves, and afterwards nothing runs twice.
check_reboot() {
  local node=$1 seen_not_ready=0 status pid rc=0
  echo "   \$ vagrant reload $node"
  vagrant reload "$node" >"$work/reload.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    status=$(node_status "$node" 2>/dev/null || true)
    if [[ "$status" == NotReady && $seen_not_ready == 0 ]]; then
      seen_not_ready=1
      echo "   [$(elapsed)] $node NotReady"
    fi
    sleep 3
  done
  wait "$pid" || rc=$?
  ((rc == 0)) || {
    tail -n 30 "$work/reload.log" | sed 's/^/   ! /' >&2
    die "vagrant reload $node failed (exit $rc)"
  }
  ssh_config
  for _ in $(seq 1 200); do
    status=$(node_status "$node" 2>/dev/null || true)
    [[ "$status" == NotReady ]] && seen_not_ready=1
    [[ "$status" == Ready && $seen_not_ready == 1 ]] && break
    sleep 3
  done
  ((seen_not_ready)) || die "$node was never seen NotReady across its reboot"
  [[ "$status" == Ready ]] || die "$node is $status, not Ready, after its reboot"
  echo "   [$(elapsed)] $node Ready again (uptime: $(on "$node" "cut -d' ' -f1 /proc/uptime") s)"
  on "$node" "systemctl is-active containerd tinykube-kubelet" | tr '\n' ' ' | grep -qx 'active active ' ||
    die "$node's units are not active after the reboot"
  echo "   containerd and tinykube-kubelet active, started by systemd at boot"
  check_nothing_twice "$node"
}

# One kubelet process, and exactly the running containers the node's pods call for
# (a sandbox and one container each): no pod was started twice across the reboot.
check_nothing_twice() {
  local node=$1 kubelets want have
  kubelets=$(on "$node" "pgrep -fc '^/opt/tinykube/bin/python3? /opt/tinykube/bin/tinykube kubelet'" || true)
  [[ "$kubelets" == 1 ]] || die "$node runs $kubelets kubelet processes"
  for _ in $(seq 1 60); do
    want=$(tk get pods -A -o json | python3 -c "$PODS_ON_NODE" "$node")
    have=$(on "$node" "ctr -n k8s.io tasks ls" | awk 'NR > 1 && $3 == "RUNNING"' | wc -l)
    [[ "$want" == "$have" ]] && break
    sleep 3
  done
  [[ "$want" == "$have" ]] || die "$node runs $have containers where its pods call for $want"
  echo "   $node: one kubelet, $have running containers for its pods' $want"
}

# (python, on the host) the containers that Running pods bound to argv[1] call for
PODS_ON_NODE='
import json, sys
doc = json.load(sys.stdin)
pods = doc.get("items", doc if isinstance(doc, list) else [doc])
node = sys.argv[1]
print(sum(1 + len(p["spec"]["containers"]) for p in pods
          if p["spec"].get("nodeName") == node and p.get("status", {}).get("phase") == "Running"))
'

# What runs: the daemons' start times and the pods' UIDs and restart counts.
cluster_fingerprint() {
  local node
  for node in node1 node2; do
    echo "$node: $(on "$node" "systemctl show -p ActiveEnterTimestampMonotonic --value \
      containerd tinykube-kubelet" | tr '\n' ' ')"
  done
  echo "apiserver: $(on node1 "systemctl show -p ActiveEnterTimestampMonotonic --value tinykube-apiserver")"
  tk get pods -A -o json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for p in doc.get("items", doc if isinstance(doc, list) else [doc]):
    restarts = [c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses", [])]
    print(p["metadata"]["name"], p["metadata"]["uid"], restarts)
' | sort
}
