/**
 * GPU samples for the DCGM ingestion tests.
 */
import type { GpuSample } from '../domain/inventory.js';

export const H100_MODEL = 'NVIDIA H100 80GB HBM3';
export const H100_TOTAL_MIB = 81_559;

/** A well-formed NVIDIA GPU UUID derived from the node name and ordinal (FNV-1a of the name). */
export function gpuUuidOf(node: string, index: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193);
  const nodeHex = (h >>> 0).toString(16).padStart(8, '0');
  return `GPU-${nodeHex}-${index.toString(16).padStart(4, '0')}-4d37-8938-0032f923bad0`;
}

/** An H100 with `usedMiB` in use, sampled at `sampledAtMs`; override any field. */
export function h100(node: string, index: number, sampledAtMs: number, overrides: Partial<GpuSample> = {}): GpuSample {
  const usedMiB = overrides.memory?.usedMiB ?? 1;
  const reservedMiB = 524;
  return {
    node,
    uuid: gpuUuidOf(node, index),
    index,
    model: H100_MODEL,
    pciBusId: `00000000:${(0x53 + index * 0x11).toString(16).toUpperCase()}:00.0`,
    memory: { totalMiB: H100_TOTAL_MIB, usedMiB, freeMiB: H100_TOTAL_MIB - usedMiB - reservedMiB, reservedMiB },
    utilPercent: 0,
    smActive: null,
    grEngineActive: null,
    xid: 0,
    mig: false,
    sampledAtMs,
    pods: [],
    ...overrides,
  };
}
