import pino from 'pino';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { ReservationLedger } from './ledger.js';
import { CommitOutcome } from './reservationStore.js';
import { reserveSlot } from './reserveSlot.js';
import type { PlacementConfig, Reservation } from '../domain/slot.js';
import { ConfigMapReservationStore } from './configMapReservationStore.js';
import type { ConfigMapReservationStoreOptions, StoreLiveness } from './configMapReservationStore.js';
import { DURABLE_DATA_KEY, decodeDurableRecord, durableObjectName } from './durableReservations.js';
import { KubeApiError, createKubeApis } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import { H100_TOTAL_MIB, idleInventory } from '../testing/gpuFixtures.js';
import { StandInApiServer } from '../testing/standInApiServer.js';

const logger = pino({ level: 'silent' });
const NAMESPACE = 'mps-system';
const placement: PlacementConfig = defaultConfig().placement;
const TTL_MS = 120_000;

interface Instance {
  ledger: ReservationLedger;
  store: ConfigMapReservationStore;
  apis: KubeApis;
  liveness: { live: Set<string>; ended: Set<string> };
}

function newInstance(standIn: StandInApiServer, options: Partial<ConfigMapReservationStoreOptions> = {}): Instance {
  const ledger = new ReservationLedger({ ttlMs: TTL_MS });
  const apis = createKubeApis(standIn.kubeConfig());
  const liveness = { live: new Set<string>(), ended: new Set<string>() };
  const storeLiveness: StoreLiveness = { hasLivePod: (id) => liveness.live.has(id), hasEnded: (id) => liveness.ended.has(id), synced: () => true };
  const store = new ConfigMapReservationStore({ apis, namespace: NAMESPACE, ledger, liveness: storeLiveness, now: Date.now, logger, ...options });
  return { ledger, store, apis, liveness };
}

function reserveOn(instance: Instance, inventory: GpuInventory, podKey: string, memoryMiB = 8192): Reservation {
  const { reservation, decision } = reserveSlot(
    inventory,
    instance.ledger,
    { podKey, memoryMiB, threadPercent: 20, priority: 'low', gpuModel: null, pinnedNode: null },
    placement,
    Date.now(),
    { dryRun: false },
  );
  if (reservation === null) throw new Error(`expected a slot: ${decision.reason}`);
  return reservation;
}

type AdmissionResult = { kind: 'granted'; reservation: Reservation; attempts: number } | { kind: 'no-fit' | 'contention'; attempts: number };

/** The admission path: choose and reserve, commit, on conflict release + refresh + choose again. */
async function admit(instance: Instance, inventory: GpuInventory, podKey: string, maxAttempts: number): Promise<AdmissionResult> {
  const signal = AbortSignal.timeout(10_000);
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const { reservation } = reserveSlot(
      inventory,
      instance.ledger,
      { podKey, memoryMiB: 8192, threadPercent: 20, priority: 'low', gpuModel: null, pinnedNode: null },
      placement,
      Date.now(),
      { dryRun: false },
    );
    if (reservation === null) return { kind: 'no-fit', attempts: attempt };
    const outcome = await instance.store.commit(reservation, signal);
    if (outcome === CommitOutcome.Committed) return { kind: 'granted', reservation, attempts: attempt };
    instance.ledger.release(reservation.id);
    await instance.store.refresh(signal);
  }
  return { kind: 'contention', attempts: maxAttempts };
}

function durableEntries(standIn: StandInApiServer): Map<string, Reservation['id'][]> {
  const byGpu = new Map<string, string[]>();
  for (const cm of standIn.list('configmaps', NAMESPACE)) {
    const record = decodeDurableRecord(cm as Parameters<typeof decodeDurableRecord>[0]);
    byGpu.set(record.gpuUuid, [...record.entries.keys()]);
  }
  return byGpu;
}

describe('ConfigMapReservationStore against the stand-in API server', () => {
  let standIn: StandInApiServer;
  const instances: Instance[] = [];
  const instance = (options: Partial<ConfigMapReservationStoreOptions> = {}): Instance => {
    const created = newInstance(standIn, options);
    instances.push(created);
    return created;
  };

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
  });
  afterEach(async () => {
    for (const i of instances.splice(0)) i.apis.close();
    await standIn.stop();
  });

  test('one replica: the first grant creates the GPU object, the next replaces it; one request each', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    const before = standIn.requests.length;
    const r1 = reserveOn(a, inventory, 'ml/p1');
    expect(await a.store.commit(r1, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    const r2 = reserveOn(a, inventory, 'ml/p2');
    expect(await a.store.commit(r2, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    expect(standIn.requests.slice(before).map((r) => r.method)).toEqual(['POST', 'PUT']);
    const stored = standIn.get('configmaps', NAMESPACE, durableObjectName(r1.gpuUuid));
    expect(Object.keys(JSON.parse((stored?.data as Record<string, string>)[DURABLE_DATA_KEY] ?? '{}').reservations)).toEqual([r1.id, r2.id]);
  });

  test('commits to one GPU that are waiting together go out in one write (group commit)', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    const before = standIn.requests.length;
    const held = standIn.holdNext((req) => req.method === 'POST');
    const first = Array.from({ length: 4 }, (_, i) => reserveOn(a, inventory, `ml/p${i}`));
    const firstWrite = Promise.all(first.map((r) => a.store.commit(r, AbortSignal.timeout(5000))));
    await held.arrived;
    // These arrive while the first write is in flight: they queue and share the next write.
    const second = Array.from({ length: 4 }, (_, i) => reserveOn(a, inventory, `ml/q${i}`));
    const secondWrite = Promise.all(second.map((r) => a.store.commit(r, AbortSignal.timeout(5000))));
    held.release();
    expect([...(await firstWrite), ...(await secondWrite)]).toEqual(Array(8).fill(CommitOutcome.Committed));
    expect(standIn.requests.slice(before).map((r) => r.method)).toEqual(['POST', 'PUT']);
    expect(a.store.stats).toEqual(expect.objectContaining({ commits: 8, writes: 2 }));
    expect(durableEntries(standIn).get(first[0]!.gpuUuid)?.sort()).toEqual([...first, ...second].map((r) => r.id).sort());
  });

  test('a grant made without another replica’s grant in view conflicts; refresh brings that grant into the ledger', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(1, 1, Date.now());
    const ra = reserveOn(a, inventory, 'ml/a');
    expect(await a.store.commit(ra, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);

    const rb = reserveOn(b, inventory, 'ml/b');
    expect(await b.store.commit(rb, AbortSignal.timeout(5000))).toBe(CommitOutcome.Conflict);
    b.ledger.release(rb.id);
    expect(b.ledger.get(ra.id)).toBeNull();
    await b.store.refresh(AbortSignal.timeout(5000));
    expect(b.ledger.get(ra.id)).toEqual(expect.objectContaining({ gpuUuid: ra.gpuUuid, memoryMiB: ra.memoryMiB, state: 'pending' }));

    const rb2 = reserveOn(b, inventory, 'ml/b');
    expect(await b.store.commit(rb2, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    expect(durableEntries(standIn).get(ra.gpuUuid)?.sort()).toEqual([ra.id, rb2.id].sort());
  });

  test('a local reservation still in flight when a refresh adds foreign grants conflicts without a request', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(1, 1, Date.now());
    const ra = reserveOn(a, inventory, 'ml/a');
    await a.store.commit(ra, AbortSignal.timeout(5000));

    const inFlight = reserveOn(b, inventory, 'ml/in-flight');
    await b.store.load(); // another admission's refresh, say: A's grant enters B's ledger now
    const before = standIn.requests.length;
    expect(await b.store.commit(inFlight, AbortSignal.timeout(5000))).toBe(CommitOutcome.Conflict);
    expect(standIn.requests.length).toBe(before);
    expect(b.store.stats.conflictsWithoutRequest).toBe(1);
  });

  test('a race lost on a GPU in view marks it contended for a while, and the reread is of that GPU alone', async () => {
    let clock = Date.now();
    const a = instance({ now: () => clock });
    const b = instance({ now: () => clock });
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(1, 1, clock);
    await a.store.commit(reserveOn(a, inventory, 'ml/a'), AbortSignal.timeout(5000));
    const rb = reserveOn(b, inventory, 'ml/b');
    expect(await b.store.commit(rb, AbortSignal.timeout(5000))).toBe(CommitOutcome.Conflict);
    expect(b.store.contendedGpus()).toEqual([rb.gpuUuid]);
    expect(a.store.contendedGpus()).toEqual([]);

    b.ledger.release(rb.id);
    const before = standIn.requests.length;
    await b.store.refresh(AbortSignal.timeout(5000));
    expect(standIn.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([`GET /api/v1/namespaces/${NAMESPACE}/configmaps/${durableObjectName(rb.gpuUuid)}`]);

    clock += 5_000;
    expect(b.store.contendedGpus()).toEqual([]);
  });

  test('a 409 on a GPU not read for a while rereads every object in one list, not one 409 at a time', async () => {
    let clock = Date.now();
    const a = instance({ now: () => clock });
    const b = instance({ now: () => clock });
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(1, 2, clock);
    // b fills both GPUs while a is not looking.
    const onFirst = [reserveOn(b, inventory, 'ml/b-0', 40 * 1024)];
    const onSecond = [reserveOn(b, inventory, 'ml/b-1', 40 * 1024)];
    for (const r of [...onFirst, ...onSecond]) expect(await b.store.commit(r, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    expect(new Set([...onFirst, ...onSecond].map((r) => r.gpuUuid)).size).toBe(2);

    clock += 1_500;
    const ra = reserveOn(a, inventory, 'ml/a', 40 * 1024);
    expect(await a.store.commit(ra, AbortSignal.timeout(5000))).toBe(CommitOutcome.Conflict);
    // An old view catching up is not a race: nothing to steer away from.
    expect(a.store.contendedGpus()).toEqual([]);
    a.ledger.release(ra.id);
    const before = standIn.requests.length;
    await a.store.refresh(AbortSignal.timeout(5000));
    expect(standIn.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([`GET /api/v1/namespaces/${NAMESPACE}/configmaps`]);
    for (const r of [...onFirst, ...onSecond]) expect(a.ledger.get(r.id)).toEqual(expect.objectContaining({ gpuUuid: r.gpuUuid }));
    // b was granting on both just now: a's preference steers away from them for a while.
    expect([...a.store.contendedGpus()].sort()).toEqual([...onFirst, ...onSecond].map((r) => r.gpuUuid).sort());
    // So the next choice fits beside both, first time.
    expect(await a.store.commit(reserveOn(a, inventory, 'ml/a'), AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
  });

  function expectWithinCapacity(granted: Reservation[], perGpu: number): void {
    // Durable truth: every GPU object within its capacity, and the grants are exactly what is stored.
    const stored = durableEntries(standIn);
    for (const ids of stored.values()) expect(ids.length).toBeLessThanOrEqual(perGpu);
    expect([...stored.values()].flat().sort()).toEqual(granted.map((g) => g.id).sort());
    const memoryByGpu = new Map<string, number>();
    for (const g of granted) memoryByGpu.set(g.gpuUuid, (memoryByGpu.get(g.gpuUuid) ?? 0) + g.memoryMiB);
    for (const used of memoryByGpu.values()) expect(used).toBeLessThanOrEqual(H100_TOTAL_MIB - placement.memorySafetyMarginMiB);
  }
  const grantsOf = (results: AdmissionResult[]): Reservation[] => results.flatMap((r) => (r.kind === 'granted' ? [r.reservation] : []));
  const perGpu = Math.floor((H100_TOTAL_MIB - placement.memorySafetyMarginMiB) / 8192);

  test('two replicas, 200 admissions at once, room for 36: every GPU filled to capacity and not beyond', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(2, 2, Date.now());
    const capacity = perGpu * inventory.gpus.length;

    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => admit(i % 2 === 0 ? a : b, inventory, `ml/pod-${i}`, 20)));
    const granted = grantsOf(results);
    expectWithinCapacity(granted, perGpu);
    expect(granted).toHaveLength(capacity);
    expect(results.filter((r) => r.kind === 'no-fit')).toHaveLength(200 - capacity);
    // Both replicas chose the same capacity; one of them had to find out through conflicts.
    expect(a.store.stats.conflicts + b.store.stats.conflicts).toBeGreaterThan(0);
  });

  test('two replicas, 200 admissions arriving in waves of 10: both replicas grant, none beyond capacity', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([a.store.load(), b.store.load()]);
    const inventory = idleInventory(2, 2, Date.now());
    const results: AdmissionResult[] = [];
    for (let wave = 0; wave < 20; wave++) {
      const arrivals = Array.from({ length: 10 }, (_, k) => wave * 10 + k);
      results.push(...(await Promise.all(arrivals.map((i) => admit(i % 2 === 0 ? a : b, inventory, `ml/pod-${i}`, 20)))));
    }
    const granted = grantsOf(results);
    expectWithinCapacity(granted, perGpu);
    expect(granted).toHaveLength(perGpu * inventory.gpus.length);
    const byReplica = (parity: number): number => granted.filter((g) => Number(g.podKey.split('-')[1]) % 2 === parity).length;
    expect(byReplica(0)).toBeGreaterThan(0);
    expect(byReplica(1)).toBeGreaterThan(0);
    expect(a.store.stats.conflicts + b.store.stats.conflicts).toBeGreaterThan(0);
  });

  test('API server down: commit throws an error saying it is unreachable and what to check; it works again once back', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    await standIn.goDown();
    const r = reserveOn(a, inventory, 'ml/p');
    const failure = await a.store.commit(r, AbortSignal.timeout(5000)).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(KubeApiError);
    expect((failure as Error).message).toMatch(/API server at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
    expect((failure as Error).message).toMatch(/check that the API server is up/);

    await standIn.comeBack();
    expect(await a.store.commit(r, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
  });

  test('a 5xx is retried within the commit; a deadline that passes abandons it with a clear error', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    standIn.injectFault({ status: 503, count: 1, match: (req) => req.method === 'POST' });
    expect(await a.store.commit(reserveOn(a, inventory, 'ml/p'), AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);

    const aborted = new AbortController();
    aborted.abort();
    const failure = await a.store.commit(reserveOn(a, inventory, 'ml/q'), aborted.signal).catch((err: unknown) => err);
    expect((failure as Error).message).toMatch(/admission deadline passed/);
  });

  test('garbage collection drops entries whose pods ended and unconfirmed ones past expiry, and keeps live ones', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    const ended = reserveOn(a, inventory, 'ml/ended');
    const live = reserveOn(a, inventory, 'ml/live');
    for (const r of [ended, live]) await a.store.commit(r, AbortSignal.timeout(5000));
    a.liveness.ended.add(ended.id);
    a.liveness.live.add(live.id);
    expect(await a.store.collectGarbage()).toBe(1);
    expect(durableEntries(standIn).get(live.gpuUuid)).toEqual([live.id]);
    expect(await a.store.collectGarbage()).toBe(0);
  });

  test('a restarted replica rebuilds unconfirmed grants from the durable objects', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 2, Date.now());
    const granted = [reserveOn(a, inventory, 'ml/x'), reserveOn(a, inventory, 'ml/y')];
    for (const r of granted) await a.store.commit(r, AbortSignal.timeout(5000));

    const restarted = instance();
    await restarted.store.load();
    for (const r of granted) expect(restarted.ledger.get(r.id)).toEqual(expect.objectContaining({ gpuUuid: r.gpuUuid, state: 'pending', expiresAtMs: r.expiresAtMs }));
  });

  test('a resync listed before a write does not undo that write in the ledger', async () => {
    const a = instance();
    await a.store.load();
    const inventory = idleInventory(1, 1, Date.now());
    await a.store.commit(reserveOn(a, inventory, 'ml/first'), AbortSignal.timeout(5000));
    const held = standIn.holdNext((req) => req.method === 'GET' && req.path.endsWith('/configmaps') && !req.watch);
    const resync = a.store.load();
    await held.arrived;
    const later = reserveOn(a, inventory, 'ml/later');
    expect(await a.store.commit(later, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    held.release();
    await resync;
    expect(a.ledger.get(later.id)).not.toBeNull();
    expect(a.store.recordOf(later.gpuUuid)?.entries.has(later.id)).toBe(true);
    // And the next grant goes through first time: the remembered version is the newest.
    expect(await a.store.commit(reserveOn(a, inventory, 'ml/next'), AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
  });

  test('release removes the entry from the durable object too', async () => {
    const a = instance();
    await a.store.load();
    const r = reserveOn(a, idleInventory(1, 1, Date.now()), 'ml/x');
    await a.store.commit(r, AbortSignal.timeout(5000));
    await a.store.release(r, AbortSignal.timeout(5000));
    expect(a.ledger.get(r.id)).toBeNull();
    expect(durableEntries(standIn).get(r.gpuUuid)).toEqual([]);
  });
});
