import { performance } from 'node:perf_hooks';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { LARGE_POD_KINDS, OVERSIZED_POD_KIND, largePod, smallPod } from '../bench/largePods.js';
import { admitPod } from './admitPod.js';

const NOW = 1_700_000_000_000;
const config = buildConfig({});
const inventory: GpuInventory = {
  gpus: Array.from({ length: 8 }, (_, i) => h100('node-a', i, NOW - 1000, { memory: { totalMiB: H100_TOTAL_MIB, usedMiB: 0, freeMiB: H100_TOTAL_MIB, reservedMiB: 0 } })),
  nodes: {},
  source: 'test',
  fetchedAtMs: NOW,
  skippedLines: 0,
  problems: [],
};

function admitted(pod: Pod, outcome: 'mutated' | 'refused' = 'mutated'): { ms: number; patchBytes: number } {
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const t0 = performance.now();
  const result = admitPod({ pod, namespace: 'bench', requestUid: 'uid-1', dryRun: false }, { config, inventory, ledger, nowMs: NOW, keys: TEST_KEY_RING });
  const ms = performance.now() - t0;
  if (result.outcome !== outcome) throw new Error(`expected the pod ${outcome}, got ${JSON.stringify(result).slice(0, 500)}`);
  return { ms, patchBytes: result.outcome === 'mutated' ? JSON.stringify(result.patch).length : 0 };
}

/** Median admission time over a few runs, after one untimed warm-up. */
function medianMs(pod: Pod, runs: number, outcome: 'mutated' | 'refused' = 'mutated'): number {
  admitted(pod, outcome);
  const times = Array.from({ length: runs }, () => admitted(pod, outcome).ms).sort((a, b) => a - b);
  return times[Math.floor(runs / 2)]!;
}

describe('admission of very large pods stays linear', () => {
  const small = admitted(smallPod());

  test.each(LARGE_POD_KINDS)('a pod with %s: the patch holds what was injected, not the pod', (kind) => {
    const large = admitted(largePod(kind));
    // The injected part is the same as for the small pod; a patch that copied the pod would be 100s of kB.
    expect(large.patchBytes).toBeLessThan(small.patchBytes * 1.5);
  });

  test.each(LARGE_POD_KINDS)('a pod with %s is admitted within a generous bound of a small pod', (kind) => {
    // A generous bound (bench/run.ts reports the real ratio): a quadratic path costs 100x and more here.
    const smallMs = medianMs(smallPod(), 21);
    const largeMs = medianMs(largePod(kind), 7);
    expect(largeMs).toBeLessThan(Math.max(20 * smallMs, 25));
  });

  test(`a pod with ${OVERSIZED_POD_KIND} is refused within a generous bound of a small pod`, () => {
    const smallMs = medianMs(smallPod(), 21);
    const largeMs = medianMs(largePod(OVERSIZED_POD_KIND), 7, 'refused');
    expect(largeMs).toBeLessThan(Math.max(20 * smallMs, 25));
  });
});
