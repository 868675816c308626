import { describe, expect, test } from '@jest/globals';
import { h100 } from '../testing/gpuSamples.js';
import { PREFERENCE_STEP, rendezvousRank, rendezvousWeight, replicaPreference } from './replicaPreference.js';
import type { ReplicaPreferenceInput } from './replicaPreference.js';

const fleet = Array.from({ length: 600 }, (_, i) => h100(`node-${Math.floor(i / 8)}`, i % 8, 0));
const gpus = fleet.map((g) => g.uuid);
const replicas = ['mps-injector-7c9f-a', 'mps-injector-7c9f-b', 'mps-injector-7c9f-c'];

function ownerOf(gpu: string, among: readonly string[]): string {
  return rendezvousRank(gpu, among[0] ?? '', among).owner;
}

describe('rendezvous ranking', () => {
  test('weights are stable, in [0, 1), and differ between replicas', () => {
    const w = rendezvousWeight('replica-a', gpus[0] ?? '');
    expect(w).toBe(rendezvousWeight('replica-a', gpus[0] ?? ''));
    expect(w).toBeGreaterThanOrEqual(0);
    expect(w).toBeLessThan(1);
    expect(rendezvousWeight('replica-b', gpus[0] ?? '')).not.toBe(w);
  });

  test('every replica computes the same owner, and the ranks of a GPU are 0..n-1 once each', () => {
    for (const gpu of gpus.slice(0, 50)) {
      const views = replicas.map((r) => rendezvousRank(gpu, r, replicas));
      expect(new Set(views.map((v) => v.owner)).size).toBe(1);
      expect(views.map((v) => v.rank).sort()).toEqual([0, 1, 2]);
      expect(views.find((v) => v.rank === 0)?.owner).toBe(views[0]?.owner);
    }
  });

  test('the GPUs are shared about evenly', () => {
    const shares = replicas.map((r) => gpus.filter((g) => ownerOf(g, replicas) === r).length / gpus.length);
    for (const share of shares) {
      expect(share).toBeGreaterThan(0.25);
      expect(share).toBeLessThan(0.42);
    }
  });

  test('a replica that leaves hands on only its own GPUs; one that joins takes only GPUs for itself', () => {
    const [a, b, c] = replicas as [string, string, string];
    for (const gpu of gpus) {
      const before = ownerOf(gpu, [a, b, c]);
      const without = ownerOf(gpu, [a, b]);
      if (before !== c) expect(without).toBe(before);
      const joined = ownerOf(gpu, [a, b, c, 'mps-injector-7c9f-d']);
      if (joined !== 'mps-injector-7c9f-d') expect(joined).toBe(before);
    }
  });
});

/** A replica's preference as a function of a GPU's UUID (over the whole fleet). */
function preferenceOf(input: ReplicaPreferenceInput): (gpuUuid: string) => number {
  const preference = replicaPreference(input);
  if (preference === null) throw new Error('expected a preference');
  return (gpuUuid) => preference.scoresFor(fleet)[gpus.indexOf(gpuUuid)] ?? NaN;
}

describe('replicaPreference', () => {
  test('the scores of one fleet are computed once, and the same array is read again', () => {
    const preference = replicaPreference({ self: replicas[0] ?? '', replicas });
    expect(preference?.scoresFor(fleet)).toBe(preference?.scoresFor(fleet));
    expect(preference?.scoresFor(fleet)).toHaveLength(fleet.length);
  });

  test('alone, a replica has no preference', () => {
    expect(replicaPreference({ self: 'a', replicas: [] })).toBeNull();
    expect(replicaPreference({ self: 'a', replicas: ['a'] })).toBeNull();
  });

  test('own GPUs rank a step above the others, and the order inside a tier stays far below any real score difference', () => {
    const self = replicas[0] ?? '';
    const prefer = preferenceOf({ self, replicas });
    for (const gpu of gpus.slice(0, 100)) {
      const value = prefer(gpu);
      if (ownerOf(gpu, replicas) === self) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThan(1e-6);
      } else {
        expect(value).toBeGreaterThanOrEqual(-PREFERENCE_STEP);
        expect(value).toBeLessThan(-PREFERENCE_STEP + 1e-6);
      }
    }
  });

  test('a GPU another replica is filling now ranks a step lower', () => {
    const self = replicas[0] ?? '';
    let lost: string[] = [];
    const prefer = preferenceOf({ self, replicas, contendedGpus: () => lost });
    const own = gpus.find((g) => ownerOf(g, replicas) === self) ?? '';
    const before = prefer(own);
    lost = [own, 'GPU-not-in-this-fleet'];
    expect(prefer(own)).toBeCloseTo(before - PREFERENCE_STEP, 9);
    lost = [];
    expect(prefer(own)).toBe(before);
  });

  test('replicas that run out of GPUs of their own open different GPUs of the others first', () => {
    // Each replica's first choice among idle GPUs it does not own: the GPU of highest preference.
    const firstForeign = (self: string): string => {
      const prefer = preferenceOf({ self, replicas });
      const foreign = gpus.filter((g) => ownerOf(g, replicas) !== self);
      return foreign.reduce((best, g) => (prefer(g) > prefer(best) ? g : best));
    };
    const [a, b, c] = replicas.map(firstForeign) as [string, string, string];
    expect(new Set([a, b, c]).size).toBe(3);
    // ... and their owners open them last: of all the owner's GPUs, these are among its lowest weights.
    for (const gpu of [a, b, c]) {
      const owner = ownerOf(gpu, replicas);
      const ownersGpus = gpus.filter((g) => ownerOf(g, replicas) === owner).map((g) => rendezvousWeight(owner, g));
      const below = ownersGpus.filter((w) => w < rendezvousWeight(owner, gpu)).length;
      expect(below / ownersGpus.length).toBeLessThan(0.1);
    }
  });
});
