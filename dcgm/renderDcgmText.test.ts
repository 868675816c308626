import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GpuSample } from '../domain/inventory.js';
import { parseDcgmText } from './parseDcgmText.js';
import { renderDcgmText } from './renderDcgmText.js';
import { h100 } from '../testing/gpuSamples.js';

const T = 1_767_000_000_000;

/** A fleet that exercises every rendered field. */
const fleet: GpuSample[] = [
  h100('node-a', 0, T, {
    memory: { totalMiB: 81_559, usedMiB: 71_680, freeMiB: 9_355, reservedMiB: 524 },
    utilPercent: 93,
    smActive: 0.71,
    grEngineActive: 0.88,
    pods: [
      { namespace: 'team-a', pod: 'vllm-0', container: 'main' },
      { namespace: 'team-b', pod: 'odd "name" \\ with\nnewline', container: 'worker' },
    ],
  }),
  h100('node-a', 1, T, { xid: 48, utilPercent: null, pciBusId: null }),
  h100('node-a', 2, T, { mig: true }),
  h100('node-b', 0, T - 45_000, { memory: null, utilPercent: 12 }),
];

describe('renderDcgmText', () => {
  test('round trip: parse(render(x)) gives x back', () => {
    const parsed = parseDcgmText(renderDcgmText(fleet), { scrapedAtMs: T });
    // Without timestamps every GPU takes the scrape time.
    expect(parsed.gpus).toEqual(fleet.map((g) => ({ ...g, sampledAtMs: T })));
    expect(parsed.skippedLines).toBe(0);
  });

  test('round trip with timestamps keeps each sample time', () => {
    const parsed = parseDcgmText(renderDcgmText(fleet, { withTimestamps: true }), { scrapedAtMs: T + 1 });
    expect(parsed.gpus).toEqual(fleet);
  });

  test('round trip with the lower-case hostname label', () => {
    const text = renderDcgmText(fleet, { hostLabel: 'hostname' });
    expect(text).toContain('hostname="node-b"');
    expect(text).not.toContain('Hostname=');
    expect(parseDcgmText(text, { scrapedAtMs: T }).gpus.map((g) => g.node)).toEqual(fleet.map((g) => g.node));
  });

  test('device extras make a fuller scrape that parses to the same GPUs', () => {
    const plain = renderDcgmText(fleet);
    const full = renderDcgmText(fleet, { withDeviceExtras: true });
    expect(full).toContain('# TYPE DCGM_FI_DEV_GPU_TEMP gauge');
    expect(full.length).toBeGreaterThan(plain.length);
    expect(parseDcgmText(full, { scrapedAtMs: T })).toEqual(parseDcgmText(plain, { scrapedAtMs: T }));
  });

  test('one HELP and one TYPE line per family, families contiguous', () => {
    const lines = renderDcgmText(fleet).trimEnd().split('\n');
    const typeLines = lines.filter((l) => l.startsWith('# TYPE '));
    expect(typeLines).toEqual([...new Set(typeLines)]);
    const familyOrder = lines.filter((l) => !l.startsWith('#')).map((l) => l.slice(0, l.indexOf('{')));
    const changes = familyOrder.filter((name, i) => i === 0 || familyOrder[i - 1] !== name);
    expect(changes).toEqual([...new Set(changes)]);
  });

  test('writes the label set of a real dcgm-exporter line', () => {
    const real = readFileSync(fileURLToPath(new URL('./fixtures/h100x8-gpu-operator.prom', import.meta.url)), 'utf8');
    const gpus = parseDcgmText(real, { scrapedAtMs: T }).gpus;
    const rendered = renderDcgmText(gpus).split('\n');
    // GPU 0 carries the pod labels, GPU 1 does not: both lines match the real ones byte for byte.
    for (const index of [0, 1]) {
      const realLine = real.split('\n').find((l) => l.startsWith(`DCGM_FI_DEV_GPU_UTIL{gpu="${index}"`));
      const renderedLine = rendered.find((l) => l.startsWith(`DCGM_FI_DEV_GPU_UTIL{gpu="${index}"`));
      expect(renderedLine).toBe(realLine);
    }
  });

  test('renders nothing but a newline for no GPUs', () => {
    expect(renderDcgmText([])).toBe('\n');
  });
});
