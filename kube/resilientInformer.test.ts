import pino from 'pino';
import type { V1Node } from '@kubernetes/client-node';
import { createKubeApis } from './kubeApis.js';
import type { KubeApis } from './kubeApis.js';
import { ResilientInformer } from './resilientInformer.js';
import { StandInApiServer } from '../testing/standInApiServer.js';

describe('ResilientInformer', () => {
  let standIn: StandInApiServer;
  let apis: KubeApis;
  let informer: ResilientInformer<V1Node> | null;

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    apis = createKubeApis(standIn.kubeConfig());
    informer = null;
  });
  afterEach(async () => {
    await informer?.stop();
    apis.close();
    await standIn.stop();
  });

  function nodeInformer(onUpsert: (name: string) => void): ResilientInformer<V1Node> {
    informer = new ResilientInformer<V1Node>({
      name: 'nodes',
      kubeConfig: standIn.kubeConfig(),
      path: '/api/v1/nodes',
      list: () => apis.core.listNode(),
      handlers: { onUpsert: (node) => onUpsert(node.metadata?.name ?? ''), onDelete: () => undefined },
      logger: pino({ level: 'silent' }),
      initialBackoffMs: 10,
    });
    return informer;
  }

  test('a handler that throws does not stop the events after it', async () => {
    standIn.create('nodes', { metadata: { name: 'bad' } });
    const seen: string[] = [];
    let sawGood: () => void = () => undefined;
    const good = new Promise<void>((resolve) => {
      sawGood = resolve;
    });
    const i = nodeInformer((name) => {
      if (name === 'bad') throw new Error('cannot handle this one');
      seen.push(name);
      if (name === 'good') sawGood();
    });
    await i.start();
    await i.synced;
    standIn.create('nodes', { metadata: { name: 'good' } });
    await good;
    expect(seen).toEqual(['good']);
    expect(i.list().map((n) => n.metadata?.name).sort()).toEqual(['bad', 'good']);
  });

  test('not healthy before its first list; healthy once synced; a failing list is retried until it succeeds', async () => {
    standIn.injectFault({ status: 500, count: 2, match: (req) => req.path === '/api/v1/nodes' && !req.watch });
    const i = nodeInformer(() => undefined);
    expect(i.isHealthy(Date.now(), 60_000)).toBe(false);
    await i.start();
    await i.synced;
    expect(standIn.countRequests((r) => r.path === '/api/v1/nodes' && !r.watch && r.status === 500)).toBe(2);
    await standIn.waitForWatches('nodes');
    expect(i.isHealthy(Date.now(), 60_000)).toBe(true);
  });
});
