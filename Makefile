# tinykube: the two commands a user types are `sudo make demo` and `sudo make test`.
# Every target installs what it needs first, so both work on a fresh Debian/Ubuntu machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_PACKAGES := python3 python3-venv python3-dev gcc libc6-dev make iproute2 nftables procps \
	containerd runc containernetworking-plugins nginx-light busybox-static docker-registry \
	docker.io iperf3 curl ruby shellcheck systemd etcd-server etcd-client chromium
# Protos with a gRPC service get client/server stubs too.
GRPC_PROTOS := $(shell grep -l '^service ' protos/*.proto)

.PHONY: setup cli-link system-deps vm-deps vm-e2e demo test unit integration e2e lint protos protos-check bench clean

setup: $(STAMP) cli-link

# System packages: only when something is missing, and only as root. Debian starts a package's
# service on install (containerd, nginx on :80, docker-registry on :5000); the tests start their
# own instances, so a policy-rc.d that refuses service starts is in place while apt runs.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; rc=$$?; \
	    [ -n "$$guard" ] && rm -f /usr/sbin/policy-rc.d; [ $$rc = 0 ] || exit $$rc; \
	  else echo "missing system packages:$$missing (run as root: sudo make setup)"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || $(MAKE) system-deps
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || $(MAKE) system-deps
	$(PYTHON) -m venv $(VENV) || { $(MAKE) system-deps && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# As root, `tinykube` goes on everyone's PATH (sudo's too), as the demo tells the user to type it:
# LINK -> this checkout's venv. Ours is a symlink to an absolute .../bin/tinykube inside a venv
# (pyvenv.cfg beside bin/) or left dangling by a deleted checkout; an older link of ours is
# replaced, anything else at LINK is left alone. As another user this does nothing (make unit).
LINK := /usr/local/bin/tinykube
OUR_CLI := $(abspath $(BIN))/tinykube

cli-link: $(STAMP)
	@[ "$$(id -u)" = 0 ] || exit 0; \
	old=$$(readlink $(LINK) 2>/dev/null); [ "$$old" = "$(OUR_CLI)" ] && exit 0; \
	if [ -e $(LINK) ] || [ -L $(LINK) ]; then \
	  case "$$old" in /*/bin/tinykube) ;; *) old=/not-ours;; esac; \
	  if [ "$$old" = /not-ours ] || { [ -e "$$old" ] && [ ! -f "$${old%/bin/tinykube}/pyvenv.cfg" ]; }; then \
	    echo "$(LINK) is not a link of ours: left alone (the CLI is $(OUR_CLI))"; exit 0; fi; \
	fi; \
	mkdir -p $(dir $(LINK)) && ln -sfn $(OUR_CLI) $(LINK) && echo "$(LINK) -> $(OUR_CLI)"

# The Vagrant path on two real VMs (vagrant/test/vm-e2e.sh): libvirt + QEMU, the box built
# offline with mmdebstrap. No recommends: libvirt's config-network package would bring a NAT
# network that starts with libvirtd.
VM_PACKAGES := vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 \
	qemu-utils dnsmasq-base mmdebstrap dpkg-dev fdisk e2fsprogs rsync openssh-client
vm-deps: system-deps
	@missing=""; for p in $(VM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "missing packages:$$missing (run as root)"; exit 1; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

vm-e2e: vm-deps setup
	bash vagrant/test/vm-e2e.sh

demo: system-deps setup
	$(BIN)/python -m localcluster.demo

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

lint: setup protos-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/vermin -q --no-tips --violations -t=3.10- --exclude-regex '(^|/)(\.venv|protos)/' apimachinery apiserver controllers scheduler controlplane.py cli kubelet netplugin localcluster bench tests

# Regenerate the Python code from protos/*.proto (committed; protos-check fails when stale).
protos: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -I . --python_out=. --mypy_out=. protos/*.proto
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -I . --grpc_python_out=. --mypy_grpc_out=. $(GRPC_PROTOS)

protos-check: setup
	@tmp=$$(mktemp -d) && cp -r protos $$tmp/ && \
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -I $$tmp --python_out=$$tmp --mypy_out=$$tmp $$tmp/protos/*.proto >/dev/null 2>&1 && \
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -I $$tmp --grpc_python_out=$$tmp --mypy_grpc_out=$$tmp $(addprefix $$tmp/,$(GRPC_PROTOS)) >/dev/null 2>&1 && \
	for f in $$tmp/protos/*_pb2*.py*; do cmp -s $$f protos/$$(basename $$f) || { echo "protos/$$(basename $$f) is stale: run make protos"; rm -rf $$tmp; exit 1; }; done; \
	rm -rf $$tmp; echo "generated protos are up to date"

test: system-deps setup lint
	$(BIN)/pytest tests

bench: setup
	$(BIN)/python bench/api_latency.py

clean:
	@if [ -L $(LINK) ] && [ "$$(readlink $(LINK))" = "$(OUR_CLI)" ]; then \
	  rm -f $(LINK) && echo "removed $(LINK)" || echo "$(LINK) stays: run make clean as root"; fi
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
