/**
 * A simulated cluster: nodes, each with a number of identical GPUs of one model.
 * Pure: parsing text into a validated ClusterSpec and expanding it into GPUs.
 */
import { z } from 'zod';
import { hashUniform } from './seededRandom.js';

const nodeGroupSchema = z
  .object({
    /** Node name; with `count` > 1 the nodes are named `<name>-1`, `<name>-2`, ... */
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label such as "gpu-node"'),
    /** How many nodes of this shape. */
    count: z.number().int().min(1).default(1),
    /** GPUs per node. */
    gpus: z.number().int().min(1).max(16),
    /** The exporter's modelName, e.g. "NVIDIA H100 80GB HBM3". */
    model: z.string().min(1),
    /** Device memory per GPU as the driver reports it (FB free + used + reserved), MiB. */
    memoryMiB: z.number().int().positive(),
  })
  .strict();

const clusterSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(''),
    nodes: z.array(nodeGroupSchema).min(1),
  })
  .strict();

export type ClusterSpec = z.infer<typeof clusterSchema>;

/** One simulated GPU. */
export interface SimGpu {
  node: string;
  index: number;
  uuid: string;
  model: string;
  memoryMiB: number;
  pciBusId: string;
}

export class ClusterError extends Error {
  override readonly name = 'ClusterError';
}

export function buildCluster(input: unknown, origin = 'cluster'): ClusterSpec {
  const result = clusterSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.slice(0, 10).map((issue) => `  - ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new ClusterError(`invalid cluster in ${origin}:\n${lines.join('\n')}\nFix these fields (see simulate/clusters/ for examples).`);
  }
  return result.data;
}

export function parseClusterText(text: string, origin = 'cluster'): ClusterSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ClusterError(`cannot parse ${origin} as JSON: ${(err as Error).message}; a cluster is a JSON object with "name" and "nodes"`);
  }
  return buildCluster(raw, origin);
}

function hex(value: number, digits: number): string {
  return Math.floor(value * 16 ** digits)
    .toString(16)
    .padStart(digits, '0');
}

/** A UUID-shaped GPU id that depends only on the node's position in the cluster and the GPU index. */
function gpuUuidFor(nodeOrdinal: number, index: number): string {
  const part = (salt: number, digits: number) => hex(hashUniform(nodeOrdinal, index, salt), digits);
  return `GPU-${part(1, 8)}-${part(2, 4)}-${part(3, 4)}-${part(4, 4)}-${part(5, 6)}${part(6, 6)}`;
}

/** Every GPU of the cluster, ordered by node then index. Node names must come out unique. */
export function expandCluster(spec: ClusterSpec): SimGpu[] {
  const gpus: SimGpu[] = [];
  const nodes = new Set<string>();
  let nodeOrdinal = 0;
  for (const group of spec.nodes) {
    for (let n = 1; n <= group.count; n++) {
      const node = group.count === 1 ? group.name : `${group.name}-${n}`;
      if (nodes.has(node)) throw new ClusterError(`cluster ${spec.name}: node name "${node}" occurs twice; give each node group a distinct name`);
      nodes.add(node);
      nodeOrdinal++;
      for (let index = 0; index < group.gpus; index++) {
        gpus.push({
          node,
          index,
          uuid: gpuUuidFor(nodeOrdinal, index),
          model: group.model,
          memoryMiB: group.memoryMiB,
          pciBusId: `00000000:${(0x18 + index * 0x11).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
        });
      }
    }
  }
  return gpus;
}
