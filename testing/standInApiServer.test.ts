import { Watch } from '@kubernetes/client-node';
import { ApiFailureKind, classifyApiError, createKubeApis } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import { StandInApiServer, parseLabelSelector } from './standInApiServer.js';

interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string };
}

/** Open a watch and collect its events until it ends. */
function collectWatch(
  apis: KubeApis,
  path: string,
  params: Record<string, string>,
): { events: WatchEvent[]; ended: Promise<unknown>; received: (count: number) => Promise<void>; abort: () => void } {
  const events: WatchEvent[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let abort = (): void => undefined;
  const ended = new Promise<unknown>((resolve) => {
    void new Watch(apis.kubeConfig)
      .watch(
        path,
        params,
        (type, object) => {
          events.push({ type, object: object as WatchEvent['object'] });
          for (const w of waiters.filter((w) => events.length >= w.count)) w.resolve();
        },
        (err) => resolve(err),
      )
      .then((controller) => {
        abort = () => controller.abort();
      });
  });
  const received = (count: number): Promise<void> =>
    events.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }));
  return { events, ended, received, abort: () => abort() };
}

describe('stand-in API server, driven by the real Kubernetes client', () => {
  let standIn: StandInApiServer;
  let apis: KubeApis;

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    apis = createKubeApis(standIn.kubeConfig());
  });
  afterEach(async () => {
    apis.close();
    await standIn.stop();
  });

  test('create, replace with the current resourceVersion, 409 on a stale one, 409 AlreadyExists on create', async () => {
    const created = await apis.core.createNamespacedConfigMap({ namespace: 'ns', body: { metadata: { name: 'a' }, data: { k: '1' } } });
    const rv1 = created.metadata?.resourceVersion;
    expect(rv1).toBeDefined();

    const replaced = await apis.core.replaceNamespacedConfigMap({ name: 'a', namespace: 'ns', body: { metadata: { name: 'a', resourceVersion: rv1 }, data: { k: '2' } } });
    expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(rv1));

    const stale = await apis.core
      .replaceNamespacedConfigMap({ name: 'a', namespace: 'ns', body: { metadata: { name: 'a', resourceVersion: rv1 }, data: { k: '3' } } })
      .then(() => null, (err: unknown) => classifyApiError(err));
    expect(stale?.kind).toBe(ApiFailureKind.Conflict);
    expect(stale?.status).toBe(409);

    const again = await apis.core
      .createNamespacedConfigMap({ namespace: 'ns', body: { metadata: { name: 'a' } } })
      .then(() => null, (err: unknown) => classifyApiError(err));
    expect(again?.kind).toBe(ApiFailureKind.AlreadyExists);

    expect(standIn.get('configmaps', 'ns', 'a')?.data).toEqual({ k: '2' });
  });

  test('list carries the collection resourceVersion and honours label selectors', async () => {
    standIn.create('pods', { metadata: { name: 'p1', namespace: 'a', labels: { app: 'x' } } });
    standIn.create('pods', { metadata: { name: 'p2', namespace: 'b', labels: { app: 'y' } } });
    const all = await apis.core.listPodForAllNamespaces();
    expect(all.items.map((p) => p.metadata?.name).sort()).toEqual(['p1', 'p2']);
    expect(all.metadata?.resourceVersion).toBe(standIn.resourceVersion);
    const selected = await apis.core.listNamespacedPod({ namespace: 'a', labelSelector: 'app=x' });
    expect(selected.items.map((p) => p.metadata?.name)).toEqual(['p1']);
    const none = await apis.core.listNamespacedPod({ namespace: 'b', labelSelector: 'app=x' });
    expect(none.items).toHaveLength(0);
  });

  test('watch streams changes after a resourceVersion, and ADDED/DELETED as objects enter or leave the selector', async () => {
    standIn.create('pods', { metadata: { name: 'before', namespace: 'ns', labels: { app: 'x' } } });
    const from = standIn.resourceVersion;
    const watch = collectWatch(apis, '/api/v1/pods', { resourceVersion: from, labelSelector: 'app=x' });
    await standIn.waitForWatches('pods');
    standIn.create('pods', { metadata: { name: 'p', namespace: 'ns', labels: { app: 'x' } } });
    standIn.modify('pods', 'ns', 'p', (pod) => {
      pod.status = { phase: 'Running' };
    });
    standIn.modify('pods', 'ns', 'p', (pod) => {
      pod.metadata.labels = { app: 'other' };
    });
    standIn.create('pods', { metadata: { name: 'ignored', namespace: 'ns', labels: { app: 'z' } } });
    await watch.received(3);
    expect(watch.events.map((e) => `${e.type}:${e.object.metadata?.name}`)).toEqual(['ADDED:p', 'MODIFIED:p', 'DELETED:p']);
    watch.abort();
    await watch.ended;
  });

  test('a watch from a compacted resourceVersion gets 410 Expired, then the stream ends', async () => {
    standIn.create('nodes', { metadata: { name: 'n1' } });
    const old = standIn.resourceVersion;
    standIn.create('nodes', { metadata: { name: 'n2' } });
    standIn.compactHistory();
    const watch = collectWatch(apis, '/api/v1/nodes', { resourceVersion: old });
    await watch.ended;
    expect(watch.events).toEqual([expect.objectContaining({ type: 'ERROR', object: expect.objectContaining({ code: 410, reason: 'Expired' }) })]);
  });

  test('dropped watches end their streams; faults answer 5xx; down and back up keeps the state', async () => {
    const watch = collectWatch(apis, '/api/v1/nodes', {});
    await standIn.waitForWatches('nodes');
    expect(standIn.dropWatches()).toBe(1);
    await watch.ended;

    standIn.injectFault({ status: 503, count: 1 });
    const failed = await apis.core.listNode().then(() => null, (err: unknown) => classifyApiError(err));
    expect(failed).toEqual(expect.objectContaining({ kind: ApiFailureKind.ServerError, status: 503 }));
    await expect(apis.core.listNode()).resolves.toEqual(expect.objectContaining({ items: [] }));

    standIn.create('nodes', { metadata: { name: 'kept' } });
    await standIn.goDown();
    const down = await apis.core.listNode().then(() => null, (err: unknown) => classifyApiError(err));
    expect(down?.kind).toBe(ApiFailureKind.Unreachable);
    await standIn.comeBack();
    const back = await apis.core.listNode();
    expect(back.items.map((n) => n.metadata?.name)).toEqual(['kept']);
  });

  test('JSON patch with a failing test operation is refused, a matching one applies', async () => {
    standIn.create('mutatingwebhookconfigurations', { metadata: { name: 'w' }, webhooks: [{ name: 'a.example', clientConfig: { caBundle: 'old' } }] });
    const refused = await apis.admissionRegistration
      .patchMutatingWebhookConfiguration(
        { name: 'w', body: [{ op: 'test', path: '/webhooks/0/name', value: 'b.example' }, { op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: 'new' }] },
        apis.callOptions(undefined, 'application/json-patch+json'),
      )
      .then(() => null, (err: unknown) => classifyApiError(err));
    expect(refused?.status).toBe(422);
    await apis.admissionRegistration.patchMutatingWebhookConfiguration(
      { name: 'w', body: [{ op: 'test', path: '/webhooks/0/name', value: 'a.example' }, { op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: 'new' }] },
      apis.callOptions(undefined, 'application/json-patch+json'),
    );
    expect((standIn.get('mutatingwebhookconfigurations', null, 'w')?.webhooks as { clientConfig: { caBundle: string } }[])[0]?.clientConfig.caBundle).toBe('new');
  });

  test('an aborted signal abandons the call', async () => {
    const controller = new AbortController();
    controller.abort();
    const failure = await apis.core.listNode(undefined, apis.callOptions(controller.signal)).then(() => null, (err: unknown) => classifyApiError(err));
    expect(failure?.kind).toBe(ApiFailureKind.Aborted);
  });

  test('label selector parsing covers equality, inequality, existence and set terms', () => {
    const select = parseLabelSelector('app=nvidia-dcgm-exporter,tier!=x,present,!absent,zone in (a, b)');
    expect(select({ app: 'nvidia-dcgm-exporter', present: '', zone: 'b' })).toBe(true);
    expect(select({ app: 'nvidia-dcgm-exporter', present: '', zone: 'c' })).toBe(false);
    expect(select({ app: 'nvidia-dcgm-exporter', present: '', zone: 'a', absent: '1' })).toBe(false);
    expect(select({ app: 'other', present: '', zone: 'a' })).toBe(false);
  });
});
