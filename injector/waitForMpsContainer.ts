/**
 * The init container that holds a pod back until its node's MPS control daemon is up. Without it a
 * CUDA client that cannot reach the daemon runs without MPS, silently, and ignores its limits.
 * Pure: configuration in, container spec out.
 */
import type { Container } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import { INIT_CONTAINER_NAME, InitEnv } from '../domain/names.js';

/**
 * The built-in wait: poll once a second for the control pipe; give up after MPS_TIMEOUT seconds with
 * a message that says where it looked and what to check. POSIX `sh` (busybox) compatible; reads the
 * variables of `InitEnv`.
 */
export const WAIT_FOR_MPS_SCRIPT = [
  'i=0',
  'while [ ! -p "${MPS_PIPE}/control" ]; do',
  '  if [ "$i" -ge "${MPS_TIMEOUT}" ]; then',
  '    echo "mps-injector: no MPS control pipe at ${MPS_PIPE}/control (node directory ${MPS_HOST_PIPE}) on node ${MPS_NODE} after ${MPS_TIMEOUT}s. Is the MPS control daemon running on this node? See the chart\'s mpsDaemon values." >&2',
  '    exit 1',
  '  fi',
  '  sleep 1',
  '  i=$((i + 1))',
  'done',
  'echo "mps-injector: MPS control pipe ready at ${MPS_PIPE}/control on node ${MPS_NODE}"',
  '',
].join('\n');

/** The wait-for-MPS init container, mounting the pipe volume `pipeVolumeName` read-only. */
export function buildWaitForMpsContainer(node: string, pipeVolumeName: string, config: Config['injection']): Container {
  const init = config.initContainer;
  return {
    name: INIT_CONTAINER_NAME,
    image: init.image,
    imagePullPolicy: init.imagePullPolicy,
    command: init.command.length > 0 ? [...init.command] : ['sh', '-c', WAIT_FOR_MPS_SCRIPT],
    env: [
      { name: InitEnv.Pipe, value: config.containerPipeDirectory },
      { name: InitEnv.HostPipe, value: config.hostPipeDirectory },
      { name: InitEnv.Timeout, value: String(init.timeoutSeconds) },
      { name: InitEnv.Node, value: node },
    ],
    resources: {
      requests: { cpu: '10m', memory: '16Mi' },
      limits: { cpu: '100m', memory: '32Mi' },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // The failure message ends up in the pod's status, where `kubectl describe pod` shows it.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [{ name: pipeVolumeName, mountPath: config.containerPipeDirectory, readOnly: true }],
  };
}
