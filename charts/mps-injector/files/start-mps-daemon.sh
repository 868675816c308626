#!/bin/sh
# Runs the NVIDIA MPS control daemon in the foreground for every GPU of this node.
# Permissive defaults on purpose: no default active thread percentage and no default pinned
# memory limit are set, because a client can only lower the daemon's limits; each pod's
# limits come from the env the webhook injects into it.
# Env: MPS_PIPE_DIRECTORY, MPS_LOG_DIRECTORY, SET_EXCLUSIVE_PROCESS, RESTORE_COMPUTE_MODE.
set -eu
export CUDA_MPS_PIPE_DIRECTORY="$MPS_PIPE_DIRECTORY"
export CUDA_MPS_LOG_DIRECTORY="$MPS_LOG_DIRECTORY"
unset CUDA_MPS_ACTIVE_THREAD_PERCENTAGE CUDA_MPS_PINNED_DEVICE_MEM_LIMIT CUDA_VISIBLE_DEVICES

for tool in nvidia-smi nvidia-cuda-mps-control; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "mps-daemon: $tool is missing from the container. Run this pod with the NVIDIA container runtime (set mpsDaemon.runtimeClassName to its RuntimeClass) so the driver tools are mounted in." >&2
    exit 1
  fi
done

if [ "$SET_EXCLUSIVE_PROCESS" = "true" ]; then
  # NVIDIA advises EXCLUSIVE_PROCESS with MPS: only the MPS server then opens the GPUs.
  # Changing the compute mode needs root on the devices, hence the privileged container.
  nvidia-smi --compute-mode=EXCLUSIVE_PROCESS
fi

restore_compute_mode() {
  if [ "$SET_EXCLUSIVE_PROCESS" = "true" ] && [ "$RESTORE_COMPUTE_MODE" = "true" ]; then
    nvidia-smi --compute-mode=DEFAULT || echo "mps-daemon: could not restore the DEFAULT compute mode; run 'nvidia-smi --compute-mode=DEFAULT' on the node" >&2
  fi
}
stop_daemon() {
  echo quit | nvidia-cuda-mps-control || true
}
trap 'stop_daemon' TERM INT

# A daemon killed earlier may have left its control pipe behind; a new one refuses to start over it.
rm -f "$CUDA_MPS_PIPE_DIRECTORY/control" "$CUDA_MPS_PIPE_DIRECTORY/control_lock"
echo "mps-daemon: starting nvidia-cuda-mps-control, pipes in $CUDA_MPS_PIPE_DIRECTORY, logs in $CUDA_MPS_LOG_DIRECTORY"
nvidia-cuda-mps-control -f &
daemon_pid=$!

status=0
wait "$daemon_pid" || status=$?
if [ "$status" -gt 128 ]; then
  # A signal interrupted the wait: the trap asked the daemon to quit; wait for it to finish.
  status=0
  wait "$daemon_pid" || status=$?
fi
restore_compute_mode
exit "$status"
