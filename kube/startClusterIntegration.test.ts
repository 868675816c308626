import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { testKeySecret } from '../testing/decisionKeys.js';
import { sealedPod } from '../testing/sealedPods.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { CommitOutcome } from '../reservations/reservationStore.js';
import { reserveSlot } from '../reservations/reserveSlot.js';
import { Exclusion, ReservationState } from '../domain/slot.js';
import type { Reservation } from '../domain/slot.js';
import { durableObjectName, encodeDurableRecord } from '../reservations/durableReservations.js';
import { startClusterIntegration } from './startClusterIntegration.js';
import type { ClusterIntegration } from './startClusterIntegration.js';
import { clusterChangeWaiter } from '../testing/clusterChanges.js';
import type { ClusterChangeWaiter } from '../testing/clusterChanges.js';
import { idleInventory } from '../testing/gpuFixtures.js';
import { StandInApiServer } from '../testing/standInApiServer.js';
import type { StoredObject } from '../testing/standInApiServer.js';

const logger = pino({ level: 'silent' });
const NS = 'mps-system';
const TTL_SECONDS = 60;

function config(overrides: Record<string, unknown> = {}): Config {
  return buildConfig({ cluster: { enabled: true, namespace: NS }, metrics: { source: 'file' }, reservations: { ttlSeconds: TTL_SECONDS }, ...overrides });
}

function injectedPod(name: string, reservation: { id: string; node: string; gpuUuid: string; memoryMiB?: number; threadPercent?: number }, phase = 'Running'): StoredObject {
  const pod = sealedPod({
    name,
    reservationId: reservation.id,
    node: reservation.node,
    gpuUuid: reservation.gpuUuid,
    memoryMiB: reservation.memoryMiB ?? 8192,
    threadPercent: reservation.threadPercent ?? 25,
    priority: 'low',
    phase,
    ...(phase === 'Running' ? { runningSince: '2026-01-01T00:01:00Z' } : {}),
  });
  return { ...pod, spec: { ...pod.spec, nodeName: reservation.node } } as unknown as StoredObject;
}

/** A pod of the chart's MPS daemon on a node, Ready or not. */
function daemonPod(node: string, ready: boolean): StoredObject {
  return {
    metadata: { name: `mps-daemon-${node}`, namespace: NS, labels: { 'app.kubernetes.io/name': 'mps-injector', 'app.kubernetes.io/component': 'mps-daemon' } },
    spec: { nodeName: node },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

const readyNode = (name: string): StoredObject => ({ metadata: { name, labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });

describe('startClusterIntegration against the stand-in API server', () => {
  let standIn: StandInApiServer;
  let clock: number;
  let running: ClusterIntegration[];
  let changes: ClusterChangeWaiter;

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    standIn.create('secrets', testKeySecret(NS) as unknown as StoredObject);
    clock = Date.now();
    running = [];
    changes = clusterChangeWaiter();
  });
  afterEach(async () => {
    for (const integration of running) await integration.stop();
    await standIn.stop();
  });

  async function start(ledger: ReservationLedger, cfg: Config = config()): Promise<ClusterIntegration> {
    const integration = await startClusterIntegration(cfg, {
      ledger,
      logger,
      kubeConfig: standIn.kubeConfig(),
      now: () => clock,
      replicaName: 'replica-0',
      onChange: changes.onChange,
      intervals: { expireMs: 20, collectGarbageMs: 20 },
    });
    running.push(integration);
    return integration;
  }

  const newLedger = (): ReservationLedger => new ReservationLedger({ ttlMs: TTL_SECONDS * 1000 });

  function reserve(ledger: ReservationLedger, gpuUuid: string, podKey: string): Reservation {
    return ledger.reserve({ podKey, node: 'node-0', gpuUuid, memoryMiB: 8192, threadPercent: 25, priority: 'low' }, clock);
  }

  test('after a restart, the ledger is rebuilt from pods and durable records before ready', async () => {
    standIn.create('pods', injectedPod('running', { id: 'r-running', node: 'node-0', gpuUuid: 'GPU-A' }));
    standIn.create('pods', injectedPod('done', { id: 'r-done', node: 'node-0', gpuUuid: 'GPU-A' }, 'Succeeded'));
    standIn.create('pods', { metadata: { name: 'plain', namespace: 'ml' }, status: { phase: 'Running' } });
    // A grant another replica made whose pod has not appeared yet, and one that lapsed long ago.
    const entry = (id: string, expiresAtMs: number) => ({ id, podKey: `ml/${id}`, node: 'node-1', gpuUuid: 'GPU-B', memoryMiB: 4096, threadPercent: 10, priority: 'low' as const, createdAtMs: clock - 1000, expiresAtMs });
    standIn.create(
      'configmaps',
      encodeDurableRecord(
        {
          name: durableObjectName('GPU-B'),
          gpuUuid: 'GPU-B',
          node: 'node-1',
          resourceVersion: null,
          entries: new Map([
            ['r-pending', entry('r-pending', clock + 30_000)],
            ['r-lapsed', entry('r-lapsed', clock - 1)],
          ]),
        },
        NS,
      ) as StoredObject,
    );

    for (let incarnation = 0; incarnation < 2; incarnation++) {
      const ledger = newLedger();
      const integration = await start(ledger);
      await integration.ready;
      expect(ledger.get('r-running')).toEqual(expect.objectContaining({ state: ReservationState.Confirmed, gpuUuid: 'GPU-A', memoryMiB: 8192, threadPercent: 25 }));
      expect(ledger.get('r-pending')).toEqual(expect.objectContaining({ state: ReservationState.Pending, gpuUuid: 'GPU-B', expiresAtMs: clock + 30_000 }));
      expect(ledger.get('r-done')).toBeNull();
      expect(ledger.get('r-lapsed')).toBeNull();
      expect(ledger.size(clock)).toBe(2);
      expect(integration.isHealthy()).toBe(true);
      await integration.stop();
      running = [];
    }
  });

  test('a reservation is confirmed when its pod appears and released when it ends; its durable entry is collected', async () => {
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;
    const r = reserve(ledger, 'GPU-A', 'ml/web-*uid');
    expect(await integration.store.commit(r, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);

    const appeared = changes.next('pod', (c) => c.key === 'ml/web-1');
    standIn.create('pods', injectedPod('web-1', { id: r.id, node: 'node-0', gpuUuid: 'GPU-A' }, 'Pending'));
    await appeared;
    expect(ledger.get(r.id)?.state).toBe(ReservationState.Confirmed);

    const ended = changes.next('pod', (c) => c.key === 'ml/web-1');
    const collected = changes.next('garbage-collected');
    standIn.modify('pods', 'ml', 'web-1', (pod) => {
      pod.status = { phase: 'Succeeded' };
    });
    await ended;
    expect(ledger.get(r.id)).toBeNull();
    await collected;
    const stored = standIn.get('configmaps', NS, durableObjectName('GPU-A'));
    expect(JSON.parse((stored?.data as Record<string, string>)['reservations.json'] ?? '{}').reservations).toEqual({});
  });

  test('only pods the injector labelled are listed and watched, never the whole cluster', async () => {
    standIn.create('pods', { metadata: { name: 'plain', namespace: 'ml' }, status: { phase: 'Running' } });
    const integration = await start(newLedger());
    await integration.ready;
    const podCalls = standIn.requests.filter((r) => r.path === '/api/v1/pods');
    expect(podCalls.some((r) => r.watch)).toBe(true);
    expect(podCalls.some((r) => !r.watch)).toBe(true);
    for (const call of podCalls) expect(new URLSearchParams(call.query).get('labelSelector')).toBe('mps-injector.io/injected=true');
  });

  test('a deleted pod releases its reservation', async () => {
    standIn.create('pods', injectedPod('doomed', { id: 'r-doomed', node: 'node-0', gpuUuid: 'GPU-A' }));
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;
    expect(ledger.get('r-doomed')).not.toBeNull();
    const deleted = changes.next('pod', (c) => c.deleted);
    standIn.remove('pods', 'ml', 'doomed');
    await deleted;
    expect(ledger.get('r-doomed')).toBeNull();
  });

  test('an unconfirmed reservation expires after the TTL, and its durable entry is collected', async () => {
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;
    const r = reserve(ledger, 'GPU-A', 'ml/never');
    await integration.store.commit(r, AbortSignal.timeout(5000));
    const expired = changes.next('expired', (c) => c.reservationIds.includes(r.id));
    const collected = changes.next('garbage-collected');
    clock += TTL_SECONDS * 1000 + 1;
    await expired;
    expect(ledger.get(r.id)).toBeNull();
    await collected;
    expect(standIn.get('configmaps', NS, durableObjectName('GPU-A'))?.data).toEqual({ 'reservations.json': expect.not.stringContaining(r.id) });
  });

  test('a cordoned node is reported unschedulable, and placement excludes its GPUs', async () => {
    standIn.create('nodes', readyNode('node-0'));
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;
    // No MPS daemon pod runs in this test: the node says so (placement checks schedulability first).
    expect(integration.nodes()['node-0']).toEqual({ name: 'node-0', schedulable: true, labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' }, mpsDaemonReady: false });

    const cordoned = changes.next('node', (c) => c.name === 'node-0');
    standIn.modify('nodes', null, 'node-0', (node) => {
      node.spec = { unschedulable: true };
    });
    await cordoned;
    expect(integration.nodes()['node-0']).toEqual(expect.objectContaining({ schedulable: false, unschedulableReason: 'cordoned' }));

    const inventory = { ...idleInventory(1, 2, clock), nodes: integration.nodes() };
    const { decision } = reserveSlot(inventory, ledger, { podKey: 'ml/x', memoryMiB: 1024, threadPercent: null, priority: 'low', gpuModel: null, pinnedNode: null }, config().placement, clock, {
      dryRun: false,
    });
    expect(decision.ok).toBe(false);
    expect(decision.ok === false && decision.excluded[Exclusion.NodeUnschedulable]).toBe(2);
  });

  describe('MPS daemon readiness', () => {
    const request = (pinnedNode: string | null) => ({ podKey: `ml/p-${pinnedNode ?? 'any'}`, memoryMiB: 1024, threadPercent: null, priority: 'low' as const, gpuModel: null, pinnedNode });
    const place = (integration: ClusterIntegration, ledger: ReservationLedger, pinnedNode: string | null) =>
      reserveSlot({ ...idleInventory(2, 1, clock), nodes: integration.nodes() }, ledger, request(pinnedNode), config().placement, clock, { dryRun: true }).decision;

    test('a node whose daemon goes NotReady stops receiving pods within one watch event, and receives them again when it recovers', async () => {
      for (const node of ['node-0', 'node-1']) {
        standIn.create('nodes', readyNode(node));
        standIn.create('pods', daemonPod(node, true));
      }
      const ledger = newLedger();
      const integration = await start(ledger);
      await integration.ready;
      expect(integration.nodes()['node-0']?.mpsDaemonReady).toBe(true);
      expect(place(integration, ledger, null)).toMatchObject({ ok: true, node: 'node-0' });

      const notReady = changes.next('mps-daemon', (c) => c.node === 'node-0' && !c.ready);
      standIn.modify('pods', NS, 'mps-daemon-node-0', (pod) => {
        pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
      });
      await notReady;
      // The very event that reported it: the next decision already avoids the node.
      expect(place(integration, ledger, null)).toMatchObject({ ok: true, node: 'node-1' });
      const refused = place(integration, ledger, 'node-0');
      expect(refused.ok).toBe(false);
      expect(refused.ok === false && refused.excluded[Exclusion.NoMpsDaemon]).toBe(1);
      expect(refused.ok === false && refused.reason).toContain('no MPS daemon ready on node-0');

      const recovered = changes.next('mps-daemon', (c) => c.node === 'node-0' && c.ready);
      standIn.modify('pods', NS, 'mps-daemon-node-0', (pod) => {
        pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
      });
      await recovered;
      expect(place(integration, ledger, null)).toMatchObject({ ok: true, node: 'node-0' });
      expect(place(integration, ledger, 'node-0')).toMatchObject({ ok: true, node: 'node-0' });
    });

    test('a deleted daemon pod takes its node out; a daemon elsewhere or with other labels does not count', async () => {
      standIn.create('nodes', readyNode('node-0'));
      standIn.create('nodes', readyNode('node-1'));
      standIn.create('pods', daemonPod('node-0', true));
      standIn.create('pods', { ...daemonPod('node-1', true), metadata: { ...daemonPod('node-1', true).metadata, namespace: 'elsewhere' } });
      standIn.create('pods', { ...daemonPod('node-1', true), metadata: { name: 'unrelated', namespace: NS, labels: { app: 'other' } } });
      const ledger = newLedger();
      const integration = await start(ledger);
      await integration.ready;
      expect(integration.nodes()['node-1']?.mpsDaemonReady).toBe(false);

      const gone = changes.next('mps-daemon', (c) => c.node === 'node-0' && c.deleted);
      standIn.remove('pods', NS, 'mps-daemon-node-0');
      await gone;
      const refused = place(integration, ledger, null);
      expect(refused.ok === false && refused.excluded).toEqual({ [Exclusion.NoMpsDaemon]: 2 });
      expect(refused.ok === false && refused.reason).toContain('2 with no MPS daemon ready on node-0, node-1');
    });

    test('turned off, no daemon watch runs and nodes carry no daemon fact', async () => {
      standIn.create('nodes', readyNode('node-0'));
      const ledger = newLedger();
      const integration = await start(ledger, config({ cluster: { enabled: true, namespace: NS, mpsDaemon: { required: false } } }));
      await integration.ready;
      expect(integration.nodes()['node-0']).not.toHaveProperty('mpsDaemonReady');
      expect(place(integration, ledger, 'node-0')).toMatchObject({ ok: true, node: 'node-0' });
      expect(integration.health().informers).not.toHaveProperty('mpsDaemons');
      expect(standIn.countRequests((r) => r.path.startsWith(`/api/v1/namespaces/${NS}/pods`))).toBe(0);
    });
  });

  test('the pod watch resumes after a dropped connection, and relists after 410 Gone (deletions missed meanwhile release)', async () => {
    standIn.create('pods', injectedPod('old', { id: 'r-old', node: 'node-0', gpuUuid: 'GPU-A' }));
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;

    const afterDrop = changes.next('pod', (c) => c.key === 'ml/after-drop');
    standIn.dropWatches({ abrupt: true, resource: 'pods' });
    standIn.create('pods', injectedPod('after-drop', { id: 'r-after-drop', node: 'node-0', gpuUuid: 'GPU-A' }));
    await afterDrop;
    expect(ledger.get('r-after-drop')).not.toBeNull();

    await standIn.goDown();
    standIn.remove('pods', 'ml', 'old');
    standIn.create('pods', injectedPod('while-down', { id: 'r-while-down', node: 'node-0', gpuUuid: 'GPU-A' }));
    standIn.compactHistory();
    const deletedOld = changes.next('pod', (c) => c.key === 'ml/old' && c.deleted);
    const addedNew = changes.next('pod', (c) => c.key === 'ml/while-down');
    const requestsBefore = standIn.requests.length;
    await standIn.comeBack();
    await Promise.all([deletedOld, addedNew]);
    expect(ledger.get('r-old')).toBeNull();
    expect(ledger.get('r-while-down')).not.toBeNull();
    // The history was gone, so only a fresh list could show the deletion.
    expect(standIn.requests.slice(requestsBefore).some((r) => r.method === 'GET' && r.path === '/api/v1/pods' && !r.watch && r.status === 200)).toBe(true);
  });

  test('API server down: commit refuses with a clear message; everything recovers when it returns', async () => {
    const ledger = newLedger();
    const integration = await start(ledger);
    await integration.ready;
    expect(integration.isHealthy()).toBe(true);

    await standIn.goDown();
    const r = reserve(ledger, 'GPU-A', 'ml/p');
    await expect(integration.store.commit(r, AbortSignal.timeout(5000))).rejects.toThrow(/Kubernetes API server at .* is unreachable .*check that the API server is up/);

    const nodeSeen = changes.next('node', (c) => c.name === 'node-late');
    await standIn.comeBack();
    standIn.create('nodes', readyNode('node-late'));
    await nodeSeen;
    expect(await integration.store.commit(r, AbortSignal.timeout(5000))).toBe(CommitOutcome.Committed);
    expect(integration.isHealthy()).toBe(true);
  });

  test('each replica holds a Lease and shares the GPUs with the live ones; one that stops leaves the others’ set', async () => {
    const intervals = { expireMs: 20, collectGarbageMs: 20, replicaLeaseSeconds: 1 };
    const startReplica = async (replicaName: string, onChange?: ClusterChangeWaiter['onChange']): Promise<ClusterIntegration> => {
      const integration = await startClusterIntegration(config(), { ledger: newLedger(), logger, kubeConfig: standIn.kubeConfig(), now: () => clock, replicaName, intervals, ...(onChange ? { onChange } : {}) });
      running.push(integration);
      await integration.ready;
      return integration;
    };
    const first = await startReplica('replica-0', changes.onChange);
    expect(first.health().replicas).toEqual(['replica-0']);
    expect(first.preference()).toBeNull();

    const joined = changes.next('replicas', (c) => c.replicas.includes('replica-1'));
    const second = await startReplica('replica-1');
    expect(second.health().replicas).toEqual(['replica-0', 'replica-1']);
    await joined;
    expect(first.health().replicas).toEqual(['replica-0', 'replica-1']);
    // They agree on who fills which GPU first: each GPU is one replica's own.
    const gpus = idleInventory(2, 4, clock).gpus;
    const [ofFirst, ofSecond] = [first, second].map((i) => i.preference()?.scoresFor(gpus) ?? []);
    gpus.forEach((_, k) => expect([ofFirst?.[k] ?? -1, ofSecond?.[k] ?? -1].filter((score) => score >= 0)).toHaveLength(1));

    const left = changes.next('replicas', (c) => !c.replicas.includes('replica-1'));
    await second.stop();
    running = running.filter((i) => i !== second);
    await left;
    expect(first.preference()).toBeNull();
    expect(standIn.list('leases', NS).map((l) => l.metadata.name)).toEqual(['mps-injector-replica-replica-0']);
  });

  test('self-managed certificates: TLS files written before ready, caBundle set, replica Lease removed on stop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mps-tls-'));
    try {
      standIn.create('mutatingwebhookconfigurations', { metadata: { name: 'mps-injector' }, webhooks: [{ name: 'pods.mps-injector.io', clientConfig: {} }] });
      const cfg = config({ server: { tlsCertFile: join(dir, 'tls.crt'), tlsKeyFile: join(dir, 'tls.key') }, certificates: { mode: 'self-managed' } });
      const integration = await start(newLedger(), cfg);
      await integration.certificatesReady;
      const served = await readFile(join(dir, 'tls.crt'), 'utf8');
      expect(served).toContain('BEGIN CERTIFICATE');
      await integration.ready;
      expect(integration.health().certificates).toEqual({ passes: 1, lastError: null });
      const webhook = (standIn.get('mutatingwebhookconfigurations', null, 'mps-injector')?.webhooks as { clientConfig: { caBundle?: string } }[])[0];
      expect(Buffer.from(webhook?.clientConfig.caBundle ?? '', 'base64').toString('utf8')).toContain('BEGIN CERTIFICATE');
      expect(standIn.list('leases', NS).map((l) => l.metadata.name)).toEqual(['mps-injector-replica-replica-0']);
      await integration.stop();
      running = [];
      expect(standIn.list('leases', NS)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
