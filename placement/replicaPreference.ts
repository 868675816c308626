/**
 * Which GPUs one replica fills first when several replicas place pods on one fleet and commit
 * grants through the same durable store (docs/adr/0005-multi-replica-reservations.md).
 *
 * Every replica ranks the live replicas for each GPU by rendezvous (highest-random-weight)
 * hashing of the replica's name and the GPU's UUID; all replicas compute the same ranking. The
 * first is the GPU's owner. A replica ranks its own GPUs above all others, so replicas that
 * binpack at the same moment fill different GPUs instead of racing for one. Among GPUs of equal
 * score, it opens its own in order of its weight, highest first; once none of its own fits,
 * another replica's GPUs in order of its rank for them (those it is second for first: each GPU
 * has one second, so two replicas that overflow do not meet), then of the owner's weight, lowest
 * first: the ones their owner would open last. A GPU another replica is filling now (this one
 * lost a race on it, or found new grants of another replica on it after a 409) ranks a step
 * lower still, so the next choice goes elsewhere instead of racing for it, or being drawn to it
 * by packing. When replicas come and go, only the GPUs of the replica that joined or left
 * change owner.
 *
 * Pure: the caller supplies the replicas (from their Leases) and the GPUs it found contended.
 */
import { hash } from 'node:crypto';
import type { GpuSample } from '../domain/inventory.js';
import type { GpuPreference } from '../domain/slot.js';

/**
 * Score between tiers: more than the whole range of placement scores ([-1, 2]), so a tier above
 * wins regardless of packing; two steps stay below the hot penalty of a `high` pod (10), so a
 * cool GPU still beats a hot one for it.
 */
export const PREFERENCE_STEP = 3;

/** Span of the order inside a tier: far below any real difference in score (1 MiB of 200 GiB is 5e-6). */
const ORDER_SPAN = 1e-7;

/** A replica's weight for a GPU, uniform in [0, 1): the same on every replica. */
export function rendezvousWeight(replica: string, gpuUuid: string): number {
  return hash('sha256', `${replica}\n${gpuUuid}`, 'buffer').readUIntBE(0, 6) / 2 ** 48;
}

export interface RendezvousRank {
  /** The GPU's owner: the replica of highest weight (a tie goes to the lower name). */
  owner: string;
  ownerWeight: number;
  /** Where `replica` ranks for the GPU: 0 owns it, 1 is second, ... */
  rank: number;
  /** `replica`'s own weight for the GPU. */
  weight: number;
}

/** How `replica` ranks among `replicas` (which include it) for a GPU. */
export function rendezvousRank(gpuUuid: string, replica: string, replicas: readonly string[]): RendezvousRank {
  const weight = rendezvousWeight(replica, gpuUuid);
  let owner = replica;
  let ownerWeight = weight;
  let rank = 0;
  for (const other of replicas) {
    if (other === replica) continue;
    const w = rendezvousWeight(other, gpuUuid);
    if (w > weight || (w === weight && other < replica)) rank++;
    if (w > ownerWeight || (w === ownerWeight && other < owner)) {
      owner = other;
      ownerWeight = w;
    }
  }
  return { owner, ownerWeight, rank, weight };
}

export interface ReplicaPreferenceInput {
  /** This replica's name. */
  self: string;
  /** The live replicas (this one is added when missing). */
  replicas: readonly string[];
  /** The GPUs other replicas are filling now, as far as this one can tell (usually none). */
  contendedGpus?: () => readonly string[];
}

/**
 * This replica's preference among GPUs (see the module comment), or null when it is the only
 * live replica: nothing to share, and placement keeps its plain order. The scores of a fleet
 * are computed once per inventory (array) and then only read, so a choice over 10,000 GPUs
 * pays an array read per candidate, not a hash.
 */
export function replicaPreference(input: ReplicaPreferenceInput): GpuPreference | null {
  const replicas = [...new Set([...input.replicas, input.self])].sort();
  if (replicas.length < 2) return null;
  const { self } = input;
  const others = replicas.length - 1;
  // Ranks change only with the replicas: computed once per GPU for this set of replicas.
  const ranked = new Map<string, number>();
  const valueOf = (gpuUuid: string): number => {
    let value = ranked.get(gpuUuid);
    if (value === undefined) {
      const { rank, weight, ownerWeight } = rendezvousRank(gpuUuid, self, replicas);
      // Order inside the tier, in [0, 1): own GPUs by weight; others by rank, then owner's weight.
      const order = rank === 0 ? weight : (others - rank + (1 - ownerWeight)) / others;
      value = (rank === 0 ? 0 : -PREFERENCE_STEP) + ORDER_SPAN * order;
      ranked.set(gpuUuid, value);
    }
    return value;
  };
  const fleets = new WeakMap<readonly GpuSample[], { scores: Float64Array; positions: Map<string, number> }>();
  return {
    scoresFor(gpus) {
      let fleet = fleets.get(gpus);
      if (fleet === undefined) {
        const scores = new Float64Array(gpus.length);
        const positions = new Map<string, number>();
        gpus.forEach((gpu, i) => {
          scores[i] = valueOf(gpu.uuid);
          positions.set(gpu.uuid, i);
        });
        fleet = { scores, positions };
        fleets.set(gpus, fleet);
      }
      const contended = input.contendedGpus?.() ?? [];
      if (contended.length === 0) return fleet.scores;
      const adjusted = Float64Array.from(fleet.scores);
      for (const gpuUuid of contended) {
        const i = fleet.positions.get(gpuUuid);
        if (i !== undefined) adjusted[i] = (adjusted[i] ?? 0) - PREFERENCE_STEP;
      }
      return adjusted;
    },
  };
}
