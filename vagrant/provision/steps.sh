#!/usr/bin/env bash
# Sourced by the provisioning scripts: a step that fails says which it was.
#
#   step NAME COMMAND [ARG...]
#
# runs COMMAND with its output kept aside (under a time limit,
# TINYKUBE_STEP_TIMEOUT seconds, default 900) and prints "==> NAME". When the
# command fails or runs out of time, the provisioning stops with the step's
# name, its exit status and the last lines of its output -- never a silent
# hang or a bare "non-zero exit status" from Vagrant:
#
#   ==> apt-get install containerd runc ...
#   prerequisites.sh: step "apt-get install containerd runc ..." failed (exit 100); its last lines:
#   | E: Unable to locate package containerd
set -euo pipefail

step() {
  local name=$1 output rc=0
  shift
  output=$(mktemp /tmp/tinykube-step.XXXXXX)
  echo "==> $name"
  timeout "${TINYKUBE_STEP_TIMEOUT:-900}" "$@" >"$output" 2>&1 </dev/null || rc=$?
  if ((rc == 0)); then
    rm -f "$output"
    return 0
  fi
  local why="failed (exit $rc)"
  ((rc == 124)) && why="ran out of time (${TINYKUBE_STEP_TIMEOUT:-900} s)"
  echo "${STEP_SCRIPT:-$(basename "$0")}: step \"$name\" $why; its last lines:" >&2
  tail -n "${TINYKUBE_STEP_LINES:-25}" "$output" | sed 's/^/| /' >&2
  rm -f "$output"
  exit "$rc"
}
