/**
 * Several replicas admitting onto one fleet through the stand-in API server, each with its
 * own ledger, reservation store and Lease, on the webhook's admission path (admitAndCommit):
 * they share the GPUs instead of racing for them, never grant capacity twice, and keep
 * granting while replicas come, go, die and lose their Leases.
 */
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import type { Pod } from 'kubernetes-types/core/v1.js';
import pino from 'pino';
import { admitAndCommit } from '../admission/admitAndCommit.js';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { Annotation } from '../domain/names.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { rendezvousRank } from '../placement/replicaPreference.js';
import { ConfigMapReservationStore } from '../reservations/configMapReservationStore.js';
import { decodeDurableRecord } from '../reservations/durableReservations.js';
import type { ConfigMapLike } from '../reservations/durableReservations.js';
import { createKubeApis } from './kubeApis.js';
import type { KubeApis } from './kubeApis.js';
import { LiveReplicas } from './liveReplicas.js';
import { ReplicaLeases, replicaLeaseName } from './replicaLeases.js';
import { H100_TOTAL_MIB, idleInventory } from '../testing/gpuFixtures.js';
import { StandInApiServer } from '../testing/standInApiServer.js';

const logger = pino({ level: 'silent' });
const NAMESPACE = 'mps-system';

interface Replica {
  name: string;
  ledger: ReservationLedger;
  store: ConfigMapReservationStore;
  live: LiveReplicas;
  apis: KubeApis;
  /** Aborting it is the replica dying: admissions in flight give up, the Lease is no longer renewed. */
  life: AbortController;
  /** Every set of live replicas it has seen. */
  seen: (readonly string[])[];
}

interface Admitted {
  replica: string;
  outcome: 'granted' | 'refused' | 'died';
  reason: string;
  reservationId: string | null;
  gpuUuid: string | null;
  memoryMiB: number;
  startedAtMs: number;
  endedAtMs: number;
}

function config(maxCommitAttempts: number): Config {
  return buildConfig({ cluster: { enabled: true, namespace: NAMESPACE, maxCommitAttempts } });
}

async function startReplica(standIn: StandInApiServer, name: string, leaseSeconds: number): Promise<Replica> {
  const ledger = new ReservationLedger({ ttlMs: 120_000 });
  const apis = createKubeApis(standIn.kubeConfig());
  const store = new ConfigMapReservationStore({ apis, namespace: NAMESPACE, ledger, liveness: { hasLivePod: () => false, hasEnded: () => false, synced: () => true }, now: Date.now, logger });
  const leases = new ReplicaLeases({ apis, namespace: NAMESPACE, replica: name, leaseDurationSeconds: leaseSeconds, now: Date.now, logger });
  const seen: (readonly string[])[] = [];
  const live = new LiveReplicas({ leases, replica: name, renewEveryMs: (leaseSeconds * 1000) / 3, logger, contendedGpus: () => store.contendedGpus(), onChange: (r) => seen.push(r) });
  const life = new AbortController();
  await store.load();
  await live.start(life.signal);
  return { name, ledger, store, live, apis, life, seen };
}

function gpuPod(name: string, memory: string, percent: number): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'ml', annotations: { [Annotation.GpuMemory]: memory, [Annotation.GpuPercent]: String(percent) } },
    spec: { containers: [{ name: 'server', image: 'vllm/vllm-openai:latest' }] },
  };
}

async function admit(replica: Replica, cfg: Config, inventory: GpuInventory, name: string, memory = '8Gi', percent = 20): Promise<Admitted> {
  const startedAtMs = Date.now();
  const signal = AbortSignal.any([AbortSignal.timeout(10_000), replica.life.signal]);
  try {
    const { admission } = await admitAndCommit(
      { pod: gpuPod(name, memory, percent), namespace: 'ml', requestUid: name, dryRun: false },
      () => ({ config: cfg, inventory, ledger: replica.ledger, nowMs: Date.now(), keys: TEST_KEY_RING, preference: replica.live.preference() }),
      { store: replica.store, maxAttempts: cfg.cluster.maxCommitAttempts, signal },
    );
    const endedAtMs = Date.now();
    if (admission.outcome === 'mutated') {
      const r = admission.reservation;
      return { replica: replica.name, outcome: 'granted', reason: '', reservationId: r?.id ?? null, gpuUuid: r?.gpuUuid ?? null, memoryMiB: r?.memoryMiB ?? 0, startedAtMs, endedAtMs };
    }
    const reason = admission.outcome === 'refused' || admission.outcome === 'allowed-unmutated' ? admission.reason : admission.outcome;
    return { replica: replica.name, outcome: replica.life.signal.aborted ? 'died' : 'refused', reason, reservationId: null, gpuUuid: null, memoryMiB: 0, startedAtMs, endedAtMs };
  } catch (err) {
    if (!replica.life.signal.aborted) throw err;
    return { replica: replica.name, outcome: 'died', reason: (err as Error).message, reservationId: null, gpuUuid: null, memoryMiB: 0, startedAtMs, endedAtMs: Date.now() };
  }
}

/** The durable grants: GPU -> entries (id, memory). */
function durableGrants(standIn: StandInApiServer): Map<string, { id: string; memoryMiB: number }[]> {
  const byGpu = new Map<string, { id: string; memoryMiB: number }[]>();
  for (const cm of standIn.list('configmaps', NAMESPACE)) {
    const record = decodeDurableRecord(cm as ConfigMapLike);
    byGpu.set(
      record.gpuUuid,
      [...record.entries.values()].map((e) => ({ id: e.id, memoryMiB: e.memoryMiB })),
    );
  }
  return byGpu;
}

/** No GPU holds more than fits, every grant an admission was told about is durable, none twice. */
function expectNoOverGrant(standIn: StandInApiServer, results: Admitted[], perGpu: { memoryMiB: number; clients: number }): void {
  const durable = durableGrants(standIn);
  const ids = [...durable.values()].flat().map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const entries of durable.values()) {
    expect(entries.length).toBeLessThanOrEqual(perGpu.clients);
    expect(entries.reduce((sum, e) => sum + e.memoryMiB, 0)).toBeLessThanOrEqual(perGpu.memoryMiB);
  }
  for (const r of results) {
    if (r.outcome !== 'granted') continue;
    expect(durable.get(r.gpuUuid ?? '')?.some((e) => e.id === r.reservationId)).toBe(true);
  }
}

const MARGIN_MIB = config(5).placement.memorySafetyMarginMiB;
const ROOM_MIB = H100_TOTAL_MIB - MARGIN_MIB;

describe('replicas that share one fleet', () => {
  let standIn: StandInApiServer;
  const replicas: Replica[] = [];
  const start = async (name: string, leaseSeconds = 30): Promise<Replica> => {
    const replica = await startReplica(standIn, name, leaseSeconds);
    replicas.push(replica);
    return replica;
  };

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
  });
  afterEach(async () => {
    for (const r of replicas.splice(0)) {
      r.life.abort();
      await r.live.stop().catch(() => undefined);
      r.apis.close();
    }
    await standIn.stop();
  });

  test('three replicas, 16 admissions in flight each, binpacking one fleet: no refusal for contention, packed like one replica', async () => {
    const members = [await start('replica-a'), await start('replica-b'), await start('replica-c')];
    await Promise.all(members.map((m) => m.live.refresh()));
    expect(members.map((m) => m.live.replicas())).toEqual(members.map(() => ['replica-a', 'replica-b', 'replica-c']));
    const cfg = config(5);
    const inventory = idleInventory(8, 8, Date.now());
    const admissions = 400;
    const results: Admitted[] = [];
    let next = 0;
    const worker = async (m: Replica): Promise<void> => {
      while (next < admissions) results.push(await admit(m, cfg, inventory, `pod-${next++}`));
    };
    await Promise.all(members.flatMap((m) => Array.from({ length: 16 }, () => worker(m))));

    expect(results.filter((r) => r.outcome !== 'granted')).toEqual([]);
    expectNoOverGrant(standIn, results, { memoryMiB: ROOM_MIB, clients: 48 });
    const conflicts = members.reduce((sum, m) => sum + m.store.stats.conflicts, 0);
    expect(conflicts / admissions).toBeLessThanOrEqual(0.05);
    // One replica alone packs 400 grants of 8 GiB (9 a GPU) onto 45 GPUs; each other replica may leave one more part-filled.
    const inUse = [...durableGrants(standIn).values()].filter((e) => e.length > 0).length;
    expect(inUse).toBeLessThanOrEqual(Math.ceil(admissions / 9) + members.length - 1);
  });

  test('a replica whose own GPUs are full goes on to the others’ without racing their owners', async () => {
    const a = await start('replica-a');
    const b = await start('replica-b');
    await Promise.all([a.live.refresh(), b.live.refresh()]);
    const cfg = config(5);
    const inventory = idleInventory(6, 8, Date.now());
    // replica-a takes three times replica-b's share: far more than its own GPUs hold.
    const results: Admitted[] = [];
    let next = 0;
    const worker = async (m: Replica, share: number): Promise<void> => {
      for (let taken = 0; taken < share && next < 330; taken++) results.push(await admit(m, cfg, inventory, `pod-${next++}`));
    };
    await Promise.all([...Array.from({ length: 16 }, () => worker(a, 16)), ...Array.from({ length: 16 }, () => worker(b, 5))]);

    expect(results.filter((r) => r.outcome !== 'granted')).toEqual([]);
    const ownedByB = results.filter((r) => r.replica === 'replica-a' && rendezvousRank(r.gpuUuid ?? '', 'replica-a', ['replica-a', 'replica-b']).rank > 0);
    expect(ownedByB.length).toBeGreaterThan(0);
    expectNoOverGrant(standIn, results, { memoryMiB: ROOM_MIB, clients: 48 });
    expect((a.store.stats.conflicts + b.store.stats.conflicts) / results.length).toBeLessThanOrEqual(0.05);
  });

  test('three replicas in a burst beyond capacity, one killed mid-burst and restarted: every GPU filled, none beyond', async () => {
    const [a, b] = [await start('replica-a'), await start('replica-b')];
    let c = await start('replica-c');
    await Promise.all([a, b, c].map((m) => m.live.refresh()));
    const cfg = config(20);
    const inventory = idleInventory(2, 2, Date.now());
    const perGpu = Math.floor(ROOM_MIB / 8192);
    const capacity = perGpu * inventory.gpus.length;

    // 210 admissions at once, 70 per replica; replica-c dies once a dozen grants are durable.
    let granted = 0;
    let killed!: () => void;
    const dozenGranted = new Promise<void>((resolve) => {
      killed = resolve;
    });
    const counted = async (m: Replica, i: number): Promise<Admitted> => {
      const result = await admit(m, cfg, inventory, `burst-${i}`);
      if (result.outcome === 'granted' && ++granted === 12) killed();
      return result;
    };
    const burst = Array.from({ length: 210 }, (_, i) => counted([a, b, c][i % 3]!, i));
    await dozenGranted;
    c.life.abort();
    c.apis.close();
    const firstResults = await Promise.all(burst);
    expect(firstResults.filter((r) => r.outcome === 'died').length).toBeGreaterThan(0);

    // Restarted under the same name: it rebuilds from the durable objects and goes on admitting.
    c = await start('replica-c');
    await Promise.all([a, b, c].map((m) => m.live.refresh()));
    const secondResults = await Promise.all(Array.from({ length: 60 }, (_, i) => admit([a, b, c][i % 3]!, cfg, inventory, `after-${i}`)));

    const results = [...firstResults, ...secondResults];
    expect(results.filter((r) => r.outcome === 'refused' && r.reason !== 'no-fit')).toEqual([]);
    expectNoOverGrant(standIn, results, { memoryMiB: ROOM_MIB, clients: 48 });
    // Everything that was free is granted in the end: grants of the dead replica's admissions that landed still count.
    const durable = [...durableGrants(standIn).values()].flat().length;
    expect(durable).toBe(capacity);
    expect(results.filter((r) => r.outcome === 'granted').length).toBeLessThanOrEqual(capacity);
  });

  test('replicas that join, leave and lose their Lease: no grant twice, and no admission or pause longer than one Lease period', async () => {
    const leaseSeconds = 1;
    const leaseMs = leaseSeconds * 1000;
    const cfg = config(5);
    const inventory = idleInventory(8, 8, Date.now());
    const results: Admitted[] = [];
    let running = true;
    // Two admissions in flight per replica, paced like a steady stream of pods (at most 6 x 200 in
    // the 5 s: the 64 GPUs hold 48 such pods each).
    const stream = async (m: Replica, lane: number): Promise<void> => {
      for (let i = 0; running && !m.life.signal.aborted && i < 200; i++) {
        results.push(await admit(m, cfg, inventory, `${m.name}-${lane}-${i}`, '1Gi', 2));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    const streams: Promise<void>[] = [];
    const startStreaming = (m: Replica): void => {
      streams.push(stream(m, 0), stream(m, 1));
    };
    const after = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

    const a = await start('replica-a', leaseSeconds);
    const b = await start('replica-b', leaseSeconds);
    await a.live.refresh();
    startStreaming(a);
    startStreaming(b);
    await after(leaseMs);

    // Joins.
    const c = await start('replica-c', leaseSeconds);
    startStreaming(c);
    await after(leaseMs);

    // Leaves cleanly: stops admitting and deletes its Lease.
    b.life.abort();
    await b.live.stop();
    await after(leaseMs);

    // Loses its Lease: deleted, and the next renewals fail, while it goes on admitting.
    const leaseOfA = replicaLeaseName('replica-a');
    standIn.injectFault({ status: 503, count: 5, match: (req) => req.path.endsWith(`/leases/${leaseOfA}`) || (req.method === 'POST' && req.path.endsWith('/leases')) });
    standIn.remove('leases', NAMESPACE, leaseOfA);
    await after(2 * leaseMs);
    running = false;
    await Promise.all(streams);

    // The churn was seen: c joined a's set, b left it, and a dropped out of c's set for a while.
    expect(a.seen.some((set) => set.includes('replica-c'))).toBe(true);
    expect(a.seen.at(-1)).not.toContain('replica-b');
    expect(c.seen.some((set) => !set.includes('replica-a'))).toBe(true);

    const done = results.filter((r) => r.outcome !== 'died');
    expect(done.filter((r) => r.outcome !== 'granted')).toEqual([]);
    expectNoOverGrant(standIn, done, { memoryMiB: ROOM_MIB, clients: 48 });
    expect(Math.max(...done.map((r) => r.endedAtMs - r.startedAtMs))).toBeLessThan(leaseMs);
    const ends = done.map((r) => r.endedAtMs).sort((x, y) => x - y);
    const pauses = ends.slice(1).map((t, i) => t - (ends[i] ?? t));
    expect(Math.max(...pauses)).toBeLessThan(leaseMs);
    expect(done.length).toBeGreaterThan(100);
  }, 20_000);
});
