#!/usr/bin/env bash
# tinykube into a virtualenv at /opt/tinykube, from the repository synced at SRC.
#
#   tinykube.sh [SRC]               SRC: the repository (default /vagrant)
#
# The source is copied to /opt/tinykube/src first (pip builds in the source
# tree, and the host's checkout should not gain build/ or *.egg-info), then
# installed with pip from PyPI's wheels -- or, offline, from a wheelhouse:
# pip reads PIP_NO_INDEX=1, PIP_FIND_LINKS=URL and PIP_TRUSTED_HOST=HOST from
# the environment (the Vagrantfile's TINYKUBE_PIP_FIND_LINKS sets them). Idempotent: a digest of the copied
# tree is kept in /opt/tinykube/installed.sha256, and pip runs only when it
# differs; then the tinykube services that are running restart on the new
# code. The CLI and the CNI plugin are linked into /usr/local/bin, and the CNI
# bin dir gets tinykube-cni and loopback (netplugin/cni/install.py).
set -euo pipefail

src=${1:-/vagrant}
prefix=${TINYKUBE_PREFIX:-/opt/tinykube}
cni_bin_dir=${TINYKUBE_CNI_BIN_DIR:-/opt/cni/bin}

export STEP_SCRIPT=tinykube.sh # named in a failed step\'s message (provision/steps.sh)
# shellcheck disable=SC1091 # beside this script, or (run by Vagrant from /tmp) in /vagrant
source "$(dirname "${BASH_SOURCE[0]}")/steps.sh" 2>/dev/null || source /vagrant/vagrant/provision/steps.sh

log() { echo "==> $*"; }

if [[ ! -f "$src/pyproject.toml" ]]; then
  echo "tinykube.sh: $src holds no pyproject.toml: is the repository synced there?" >&2
  exit 1
fi

# --- a fresh copy of the source without VCS, venv and caches (a file deleted in the
# repository must not live on in the copy)
mkdir -p "$prefix"
rm -rf "$prefix/src.new"
mkdir "$prefix/src.new"
tar -C "$src" --exclude=./.git --exclude=./.venv --exclude=./vagrant/.vagrant \
  --exclude='*.egg-info' --exclude=./build --exclude='__pycache__' \
  --exclude=./.mypy_cache --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - . |
  tar -C "$prefix/src.new" -xf -
rm -rf "$prefix/src"
mv "$prefix/src.new" "$prefix/src"
digest=$(cd "$prefix/src" && find . -type f \( -name '*.py' -o -name '*.toml' -o -name '*.pyi' \) \
  -not -path './build/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)

# --- the virtualenv
if [[ ! -x "$prefix/bin/python" ]]; then
  step "python3 -m venv $prefix" python3 -m venv "$prefix"
fi
installed=""
[[ -f "$prefix/installed.sha256" ]] && installed=$(cat "$prefix/installed.sha256")
if [[ "$digest" != "$installed" || ! -x "$prefix/bin/tinykube" ]]; then
  log "pip install tinykube from $src${PIP_FIND_LINKS:+ (wheels from $PIP_FIND_LINKS)}"
  step "pip install --upgrade pip" "$prefix/bin/pip" install -q --upgrade pip
  step "pip install $prefix/src" "$prefix/bin/pip" install -q --upgrade "$prefix/src"
  echo "$digest" >"$prefix/installed.sha256"
  # running daemons pick up the new code (try-restart leaves stopped ones stopped)
  systemctl try-restart tinykube-apiserver.service tinykube-kubelet.service 2>/dev/null || true
fi

for tool in tinykube tinykube-cni; do
  if [[ "$(readlink -f "/usr/local/bin/$tool" || true)" != "$prefix/bin/$tool" ]]; then
    ln -sfn "$prefix/bin/$tool" "/usr/local/bin/$tool"
    log "linked /usr/local/bin/$tool"
  fi
done

# --- the CNI bin dir containerd (or the kubelet, for Docker) runs plugins from
mkdir -p "$cni_bin_dir"
"$prefix/bin/python" -c \
  'import sys; from netplugin.cni.install import install_bin_dir; install_bin_dir(sys.argv[1])' \
  "$cni_bin_dir"
for plugin in tinykube-cni loopback; do
  if [[ ! -x "$cni_bin_dir/$plugin" ]]; then
    echo "tinykube.sh: $cni_bin_dir/$plugin is missing or not executable" >&2
    exit 1
  fi
done
log "tinykube $("$prefix/bin/tinykube" version --client 2>/dev/null || echo installed) in $prefix"
