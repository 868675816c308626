import { dcgmPromQl, parsePrometheusQuery } from './parsePrometheusQuery.js';

const NOW = 1_767_000_100_000;

/** A well-formed UUID of GPU `gpu`. */
const promUuid = (gpu: number): string => `GPU-0000beef-0000-4000-8000-${String(gpu).padStart(12, '0')}`;

const gpuLabels = (gpu: number, extra: Record<string, string> = {}): Record<string, string> => ({
  gpu: String(gpu),
  UUID: promUuid(gpu),
  pci_bus_id: `00000000:0${gpu}:00.0`,
  device: `nvidia${gpu}`,
  modelName: 'NVIDIA H100 80GB HBM3',
  Hostname: 'gpu-node-3',
  job: 'dcgm-exporter',
  instance: '10.0.0.3:9400',
  ...extra,
});

const vector = (series: Array<{ name: string; labels: Record<string, string>; value: string; atSeconds: number }>): unknown => ({
  status: 'success',
  data: {
    resultType: 'vector',
    result: series.map((s) => ({ metric: { __name__: s.name, ...s.labels }, value: [s.atSeconds, s.value] })),
  },
});

describe('dcgmPromQl', () => {
  test('selects every DCGM family placement reads, with a lookback window', () => {
    const q = dcgmPromQl(120);
    expect(q).toMatch(/^\{__name__=~"[A-Z_|]+"\}\[120s\]$/);
    for (const name of ['DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_RESERVED', 'DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_PROF_SM_ACTIVE', 'DCGM_FI_DEV_XID_ERRORS']) {
      expect(q).toContain(name);
    }
  });
});

describe('parsePrometheusQuery', () => {
  test('reads a matrix: the last sample is the reading and its time the sample time', () => {
    const body = {
      status: 'success',
      data: {
        resultType: 'matrix',
        result: [
          { metric: { __name__: 'DCGM_FI_DEV_FB_FREE', ...gpuLabels(0) }, values: [[1_767_000_000, '81000'], [1_767_000_030, '80000']] },
          { metric: { __name__: 'DCGM_FI_DEV_FB_USED', ...gpuLabels(0) }, values: [[1_767_000_000, '0'], [1_767_000_030.5, '1000']] },
          { metric: { __name__: 'DCGM_FI_DEV_FB_RESERVED', ...gpuLabels(0) }, values: [[1_767_000_030, '559']] },
          { metric: { __name__: 'DCGM_FI_DEV_GPU_UTIL', ...gpuLabels(0) }, values: [[1_767_000_030, '64']] },
        ],
      },
    };
    const parsed = parsePrometheusQuery(body, { queriedAtMs: NOW });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.gpus).toEqual([
      {
        node: 'gpu-node-3',
        uuid: promUuid(0),
        index: 0,
        model: 'NVIDIA H100 80GB HBM3',
        pciBusId: '00000000:00:00.0',
        memory: { totalMiB: 81_559, usedMiB: 1000, freeMiB: 80_000, reservedMiB: 559 },
        utilPercent: 64,
        smActive: null,
        grEngineActive: null,
        xid: 0,
        mig: false,
        sampledAtMs: 1_767_000_030_000,
        pods: [],
      },
    ]);
    expect(parsed.problems).toEqual([]);
  });

  test('reads an instant vector with the evaluation time as sample time', () => {
    const parsed = parsePrometheusQuery(vector([{ name: 'DCGM_FI_DEV_GPU_UTIL', labels: gpuLabels(1), value: '7', atSeconds: 1_767_000_090 }]), { queriedAtMs: NOW });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.gpus.map((g) => [g.index, g.utilPercent, g.sampledAtMs])).toEqual([[1, 7, 1_767_000_090_000]]);
  });

  test("a node label from the scrape target beats the exporter's host label", () => {
    const series = [
      { name: 'DCGM_FI_DEV_GPU_UTIL', labels: gpuLabels(0, { Hostname: 'nvidia-dcgm-exporter-abcde', kubernetes_node: 'gpu-node-9' }), value: '1', atSeconds: 1 },
      { name: 'DCGM_FI_DEV_GPU_UTIL', labels: gpuLabels(1, { Hostname: 'nvidia-dcgm-exporter-abcde', node: 'gpu-node-8' }), value: '1', atSeconds: 1 },
      { name: 'DCGM_FI_DEV_GPU_UTIL', labels: gpuLabels(2, { Hostname: '', hostname: 'gpu-node-7' }), value: '1', atSeconds: 1 },
    ];
    const parsed = parsePrometheusQuery(vector(series), { queriedAtMs: NOW });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.gpus.map((g) => g.node).sort()).toEqual(['gpu-node-7', 'gpu-node-8', 'gpu-node-9']);
    const onlyHost = parsePrometheusQuery(vector(series), { queriedAtMs: NOW, nodeLabels: ['Hostname'] });
    if (!onlyHost.ok) throw new Error(onlyHost.message);
    expect(onlyHost.gpus.map((g) => g.node)).toEqual(['nvidia-dcgm-exporter-abcde', 'nvidia-dcgm-exporter-abcde']);
  });

  test('prefers exported_pod labels (Prometheus renamed the workload labels)', () => {
    const labels = gpuLabels(0, {
      pod: 'nvidia-dcgm-exporter-abcde',
      namespace: 'gpu-operator',
      container: 'nvidia-dcgm-exporter',
      exported_pod: 'vllm-0',
      exported_namespace: 'llm',
      exported_container: 'main',
    });
    const parsed = parsePrometheusQuery(vector([{ name: 'DCGM_FI_DEV_GPU_UTIL', labels, value: '1', atSeconds: 1 }]), { queriedAtMs: NOW });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.gpus[0]?.pods).toEqual([{ namespace: 'llm', pod: 'vllm-0', container: 'main' }]);
  });

  test('skips and counts NaN series and series without a name', () => {
    const body = {
      status: 'success',
      data: {
        resultType: 'vector',
        result: [
          { metric: { __name__: 'DCGM_FI_DEV_GPU_UTIL', ...gpuLabels(0) }, value: [1, 'NaN'] },
          { metric: { ...gpuLabels(0) }, value: [1, '3'] },
          { metric: { __name__: 'DCGM_FI_DEV_FB_USED', ...gpuLabels(0) }, value: [1, '12'] },
        ],
      },
      warnings: ['query touched a lot of series'],
    };
    const parsed = parsePrometheusQuery(body, { queriedAtMs: NOW });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.skippedSeries).toBe(2);
    expect(parsed.gpus[0]?.utilPercent).toBeNull();
    expect(parsed.problems.join('\n')).toMatch(/Prometheus warning: query touched a lot of series/);
    expect(parsed.problems.join('\n')).toMatch(/skipped 1 series whose last value is NaN/);
  });

  test('an error answer is a failure with Prometheus’ own message', () => {
    const parsed = parsePrometheusQuery({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' }, { queriedAtMs: NOW });
    expect(parsed).toEqual({ ok: false, message: 'Prometheus refused the query: bad_data: parse error at char 3' });
  });

  test('a body that is not a query result is a failure that points at the URL', () => {
    const parsed = parsePrometheusQuery({ hello: 'world' }, { queriedAtMs: NOW });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(/not a Prometheus query result .*check that the URL is the Prometheus HTTP API base/);
    const scalar = parsePrometheusQuery({ status: 'success', data: { resultType: 'scalar', result: [1, '1'] } }, { queriedAtMs: NOW });
    expect(scalar).toEqual({ ok: false, message: expect.stringMatching(/answered a scalar/) as unknown as string });
  });
});
