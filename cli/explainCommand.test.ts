import { h100 } from '../testing/gpuSamples.js';
import type { StoredObject } from '../testing/standInApiServer.js';
import { gpuClusterPerTest } from '../testing/standInGpuCluster.js';
import { DecisionStatus, renderExplanation, runExplain } from './explainCommand.js';
import type { Explanation } from './explainCommand.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('explain against the stand-in API server', () => {
  const env = gpuClusterPerTest(NOW);

  const deps = () => ({ kubeConfig: env.standIn.kubeConfig(), now: () => NOW, exporterUrlFor: env.cluster.exporterUrlFor });
  const explain = async (pod: string, opts: Record<string, string> = {}): Promise<Explanation> => JSON.parse((await runExplain(pod, { ...opts, output: 'json' }, deps())).stdout) as Explanation;

  test('a placed pod: genuine decision, its reservation held, and where it would go now', async () => {
    const e = await explain('ml/llm-0');
    expect(e.decision).toMatchObject({ status: 'genuine', why: null, record: { node: 'gpu-node-1', gpuIndex: 0, memoryLimitMiB: 20_480, threadPercent: 40, priority: 'high', reservationId: 'r-llm-0', ageSeconds: 3700 } });
    expect(e.reservation).toMatchObject({ id: 'r-llm-0', state: 'confirmed', runningSince: '2026-03-01T11:00:00.000Z' });
    // Placed afresh with its own grant left out: binpack prefers the GPU that already holds a client (embed-0's, GPU 1).
    expect(e.now.outcome).toBe('placed');
    expect(e.now.request).toMatchObject({ memoryMiB: 20_480, pinnedNode: null });
    expect(e.now.gpus.filter((g) => g.rule === 'chosen')).toHaveLength(1);
    expect(e.now.gpus).toHaveLength(8);
    expect(e.now.summary).toMatch(/^would choose gpu-node-1 GPU \d: binpack/);

    const text = (await runExplain('llm-0', { namespace: 'ml' }, deps())).stdout;
    expect(text).toContain("Decision:   genuine: the webhook's seal verifies for this pod");
    expect(text).toContain(`  Slot:     gpu-node-1 GPU 0 (${h100('gpu-node-1', 0, 0).uuid})`);
    expect(text).toContain('  Limits:   20Gi pinned memory, 40% active threads, priority high, containers server');
    expect(text).toContain('  Ledger:   reservation r-llm-0 held, confirmed, running since 2026-03-01T11:00:00.000Z');
    expect(text).toMatch(/^NODE\s+GPU\s+VERDICT\s+DETAIL$/m);
  });

  test('an edited decision is reported as not genuine and holds nothing', async () => {
    const e = await explain('ml/sneaky');
    expect(e.decision.status).toBe('forged');
    expect(e.decision.why).toMatch(/seal does not match its decision annotations/);
    expect(e.reservation).toBeNull();
  });

  test('a pod no GPU fits: every GPU with the rule that excluded it', async () => {
    env.standIn.modify('nodes', null, 'gpu-node-2', (node) => {
      (node as { spec?: Record<string, unknown> }).spec = { unschedulable: true };
    });
    env.standIn.create('pods', {
      metadata: { name: 'huge', namespace: 'ml', annotations: { 'mps-injector.io/gpu-memory': '79Gi' } },
      spec: { containers: [{ name: 'server', image: 'x' }] },
      status: { phase: 'Pending' },
    } as StoredObject);
    const e = await explain('ml/huge');
    expect(e.decision.status).toBe('none');
    expect(e.now.outcome).toBe('refused');
    expect(e.now.summary).toMatch(/^would refuse it: no GPU fits 79Gi: 8 considered/);
    const rules = Object.fromEntries(e.now.gpus.map((g) => [`${g.node}/${g.index}`, g.rule]));
    expect(rules).toEqual({
      'gpu-node-1/0': 'memory',
      'gpu-node-1/1': 'memory',
      'gpu-node-1/2': 'memory',
      'gpu-node-1/3': 'memory',
      'gpu-node-2/0': 'node-unschedulable',
      'gpu-node-2/1': 'node-unschedulable',
      'gpu-node-2/2': 'node-unschedulable',
      'gpu-node-2/3': 'node-unschedulable',
    });
    expect(e.now.gpus[3]?.detail).toMatch(/^short of memory \(best: gpu-node-1 GPU 3, 78.6Gi free\)/);
  });

  test('a pod that does not exist is an input error (exit 3); a bad argument a usage error (exit 2)', async () => {
    await expect(runExplain('ml/nope', {}, deps())).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining('pod ml/nope not found') });
    await expect(runExplain('ml/a/b', {}, deps())).rejects.toMatchObject({ exitCode: 2 });
  });
});

describe('explain: the reserved share and the MPS limit', () => {
  const explanation = (threadCeilingPercent?: number): Explanation => ({
    pod: 'ml/chat-0',
    phase: 'Running',
    nodeName: 'gpu-a',
    decision: {
      status: DecisionStatus.Genuine,
      why: null,
      record: {
        reservationId: 'rsv-1',
        node: 'gpu-a',
        gpuUuid: 'GPU-a0',
        gpuIndex: 0,
        threadPercent: 30,
        ...(threadCeilingPercent !== undefined ? { threadCeilingPercent } : {}),
        memoryLimitMiB: 8192,
        priority: 'high',
        containers: ['server'],
        metricsAgeSeconds: 4,
        reason: 'binpack: ...',
        issuedAt: '2026-03-01T11:59:00.000Z',
        ageSeconds: 60,
      },
    },
    reservation: null,
    now: { outcome: 'skipped', summary: 'the webhook would keep its recorded decision', request: null, gpus: [] },
  });

  it('shows both when the limit is above the share', () => {
    expect(renderExplanation(explanation(60))).toContain('8Gi pinned memory, 30% compute reserved, 60% active threads (its limit), priority high');
  });

  it('shows the share as the active threads when there is no limit above it (decisions sealed before limits too)', () => {
    expect(renderExplanation(explanation())).toContain('8Gi pinned memory, 30% active threads, priority high');
  });
});
