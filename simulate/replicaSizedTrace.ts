/**
 * For a same-load comparison: the pods of a trace that fit one equal-split replica (GPU memory
 * / replicas) of some GPU of the cluster that matches their model. On a cluster with enough
 * replicas, every strategy can then admit every pod, and GPU-hours compare like for like.
 */
import type { SimGpu } from './cluster.js';
import { modelMatches } from './strategies/replicaStrategies.js';
import type { Trace } from './trace.js';

function fitsAReplica(pod: Trace['pods'][number], gpus: readonly SimGpu[], replicasPerGpu: number): boolean {
  return gpus.some((gpu) => modelMatches(gpu.model, pod.gpuModel) && Math.floor(gpu.memoryMiB / replicasPerGpu) >= pod.memoryMiB);
}

/** True when at least one pod of the trace fits one replica of some GPU. */
export function hasReplicaSizedPod(trace: Trace, gpus: readonly SimGpu[], replicasPerGpu: number): boolean {
  return trace.pods.some((pod) => fitsAReplica(pod, gpus, replicasPerGpu));
}

export function replicaSizedTrace(trace: Trace, gpus: readonly SimGpu[], replicasPerGpu: number): Trace {
  const pods = trace.pods.filter((pod) => fitsAReplica(pod, gpus, replicasPerGpu));
  if (pods.length === 0) throw new RangeError(`no pod of trace ${trace.name} fits one of ${replicasPerGpu} replicas of any GPU; lower --replicas`);
  return {
    ...trace,
    name: `${trace.name}-replica-sized`,
    description: `${trace.description} Only the ${pods.length} of ${trace.pods.length} pods that fit one of ${replicasPerGpu} replicas of a GPU.`,
    pods,
  };
}
