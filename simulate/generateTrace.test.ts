import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Priority } from '../domain/slot.js';
import { BURST, LLM_TRACE, LLM_WORKLOADS, TRACE_KINDS, generateTrace } from './generateTrace.js';
import { buildTrace, formatTraceJson, parseTraceText } from './trace.js';

describe('generateTrace', () => {
  it('makes the same trace for the same seed and a different one for another seed', () => {
    for (const kind of TRACE_KINDS) {
      expect(generateTrace(kind, 11)).toEqual(generateTrace(kind, 11));
      expect(generateTrace(kind, 11).pods).not.toEqual(generateTrace(kind, 12).pods);
    }
  });

  it('produces valid traces with distinct, increasing arrival times', () => {
    for (const kind of TRACE_KINDS) {
      const trace = generateTrace(kind, 1);
      expect(buildTrace(trace)).toEqual(trace);
      for (let i = 1; i < trace.pods.length; i++) {
        expect(trace.pods[i]!.arrivalS).toBeGreaterThan(trace.pods[i - 1]!.arrivalS);
      }
    }
  });

  it('burst: 200 identical Deployment pods created within 10 s', () => {
    const trace = generateTrace('burst', 1);
    const burst = trace.pods.filter((p) => p.workload === 'chat-deployment');
    expect(burst).toHaveLength(BURST.replicas);
    const arrivals = burst.map((p) => p.arrivalS);
    expect(Math.min(...arrivals)).toBeGreaterThanOrEqual(BURST.startS);
    expect(Math.max(...arrivals)).toBeLessThan(BURST.startS + BURST.windowS);
    expect(new Set(burst.map((p) => `${p.memoryMiB}/${p.computePercent}/${p.priority}`))).toEqual(new Set([`8192/20/${Priority.High}`]));
  });

  it('steady: Poisson arrivals with a mean gap near 30 s', () => {
    const trace = generateTrace('steady', 1);
    const first = trace.pods[0]!.arrivalS;
    const last = trace.pods[trace.pods.length - 1]!.arrivalS;
    const meanGap = (last - first) / (trace.pods.length - 1);
    expect(meanGap).toBeGreaterThan(27);
    expect(meanGap).toBeLessThan(33);
  });

  it('diurnal: more arrivals around noon than around midnight, and both pod classes', () => {
    const trace = generateTrace('diurnal', 1);
    const inHours = (from: number, to: number) => trace.pods.filter((p) => p.arrivalS >= from * 3600 && p.arrivalS < to * 3600).length;
    expect(inHours(10, 14)).toBeGreaterThan(3 * (inHours(0, 2) + inHours(22, 24)));
    const workloads = new Set(trace.pods.map((p) => p.workload));
    expect(workloads).toEqual(new Set(['vision-small', 'llm-large']));
  });

  it('llm: model servers whose memory is weights, a runtime share and a KV cache that fills; bursty requests', () => {
    const trace = generateTrace('llm', 1);
    expect(new Set(trace.pods.map((p) => p.workload))).toEqual(new Set(Object.keys(LLM_WORKLOADS)));
    for (const p of trace.pods) {
      const spec = LLM_WORKLOADS[p.workload as keyof typeof LLM_WORKLOADS];
      const kv = p.kvCacheMiB ?? 0;
      expect(kv % Math.round((LLM_TRACE.kvTokens.step * spec.kvKiBPerToken) / 1024)).toBe(0);
      expect(p.memoryMiB - kv).toBe(Math.round((spec.weightsGiB + LLM_TRACE.runtimeGiB) * 1024));
      expect(p.kvGrowthS).toBeGreaterThanOrEqual(LLM_TRACE.kvGrowthS.min);
      expect(p.kvGrowthS).toBeLessThanOrEqual(LLM_TRACE.kvGrowthS.max);
      expect(p.burst).toEqual(LLM_TRACE.burst);
      expect(p.computePercent).toBeGreaterThanOrEqual(spec.computePercent.min);
      expect(p.computePercent).toBeLessThanOrEqual(spec.computePercent.max);
    }
    const largest = trace.pods.filter((p) => p.workload === 'llm-70b-int4');
    expect(largest.every((p) => p.priority === Priority.High && p.memoryMiB > 40 * 1024)).toBe(true);
  });

  it('a pod of a trace without cache or bursts carries no such fields, so older traces keep their bytes', () => {
    for (const kind of ['steady', 'burst', 'diurnal'] as const) {
      for (const p of generateTrace(kind, 1).pods) expect(Object.keys(p)).toEqual(['id', 'arrivalS', 'durationS', 'memoryMiB', 'computePercent', 'priority', 'workload', 'gpuModel']);
    }
  });

  it('rejects a KV cache larger than the pod and bursts whose mean cannot stay the share', () => {
    const pod = { id: 'a', arrivalS: 0, durationS: 1, memoryMiB: 100, computePercent: 10, priority: 'low', workload: 'x' };
    expect(() => buildTrace({ name: 't', pods: [{ ...pod, kvCacheMiB: 101 }] })).toThrow(/kvCacheMiB: kvCacheMiB is part of memoryMiB/);
    expect(() => buildTrace({ name: 't', pods: [{ ...pod, burst: { windowS: 60, share: 0.5, factor: 2 } }] })).toThrow(/share x factor must be below 1/);
    expect(buildTrace({ name: 't', pods: [{ ...pod, kvCacheMiB: 50, kvGrowthS: 10, burst: { windowS: 60, share: 0.2, factor: 2.5 } }] }).pods[0]!.kvCacheMiB).toBe(50);
  });

  it('the shipped traces are exactly what the generator makes from their recorded seed', () => {
    for (const kind of TRACE_KINDS) {
      const file = fileURLToPath(new URL(`./traces/${kind}.json`, import.meta.url));
      const text = readFileSync(file, 'utf8');
      const shipped = parseTraceText(text, file);
      expect(shipped.generator).not.toBeNull();
      const again = generateTrace(kind, shipped.generator!.seed);
      expect(text).toBe(formatTraceJson(again));
    }
  });
});
