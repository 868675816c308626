#!/bin/sh
# Readiness of the MPS control daemon: Ready only while a client can reach it through its
# control pipe, which is what every injected pod's init container and CUDA client need.
# Checks that the control pipe exists as a FIFO, then asks the daemon a read-only question
# through it (get_default_active_thread_percentage) and expects a number back in time. A pipe
# left behind by a dead daemon has no reader: the query then times out and the pod is NotReady.
# Env: MPS_PIPE_DIRECTORY; MPS_PROBE_TIMEOUT (seconds, default 3).
set -u
pipe="$MPS_PIPE_DIRECTORY/control"
if [ ! -p "$pipe" ]; then
  echo "mps-daemon not ready: no control pipe at $pipe (the daemon has not started, or exited)" >&2
  exit 1
fi
export CUDA_MPS_PIPE_DIRECTORY="$MPS_PIPE_DIRECTORY"
if ! answer=$(echo get_default_active_thread_percentage | timeout "${MPS_PROBE_TIMEOUT:-3}" nvidia-cuda-mps-control 2>&1); then
  echo "mps-daemon not ready: no answer through $pipe within ${MPS_PROBE_TIMEOUT:-3}s: ${answer:-nothing}" >&2
  exit 1
fi
# The daemon prints the percentage, e.g. "100.0": take the first word, whitespace aside.
set -f
# shellcheck disable=SC2086
set -- $answer
case "${1:-}" in
  '' | *[!0-9.]*)
    echo "mps-daemon not ready: unexpected answer through $pipe: $answer" >&2
    exit 1
    ;;
esac
echo "mps-daemon ready: $pipe answers (default active thread percentage $1)"
