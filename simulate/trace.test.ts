import { buildTrace, formatTraceJson, parseTraceText, traceEndS } from './trace.js';

const pod = (id: string, arrivalS: number) => ({ id, arrivalS, durationS: 10, memoryMiB: 1024, computePercent: 10, priority: 'low', workload: 'w' });

describe('trace', () => {
  it('sorts pods by arrival, keeping file order on ties, and fills defaults', () => {
    const trace = buildTrace({ name: 't', pods: [pod('b', 5), pod('a', 1), pod('c', 5)] });
    expect(trace.pods.map((p) => p.id)).toEqual(['a', 'b', 'c']);
    expect(trace.pods[0]!.gpuModel).toBeNull();
    expect(trace.generator).toBeNull();
    expect(traceEndS(trace)).toBe(15);
  });

  it('rejects duplicate ids and unparseable text with a fix', () => {
    expect(() => buildTrace({ name: 't', pods: [pod('a', 0), pod('a', 1)] })).toThrow(/"a" appears twice/);
    expect(() => parseTraceText('{', 'x.json')).toThrow(/cannot parse x\.json as JSON/);
    expect(() => buildTrace({ name: 't', pods: [] })).toThrow(/pods/);
  });

  it('writes one pod per line and reads back the same trace', () => {
    const trace = buildTrace({ name: 't', description: 'd', pods: [pod('a', 0), pod('b', 1)] });
    const text = formatTraceJson(trace);
    expect(text.split('\n').filter((l) => l.includes('"id"'))).toHaveLength(2);
    expect(parseTraceText(text)).toEqual(trace);
  });
});
