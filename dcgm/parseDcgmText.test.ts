import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DcgmTextParser, parseDcgmText } from './parseDcgmText.js';
import { renderDcgmText } from './renderDcgmText.js';
import { h100 } from '../testing/gpuSamples.js';

const realSample = readFileSync(fileURLToPath(new URL('./fixtures/h100x8-gpu-operator.prom', import.meta.url)), 'utf8');
const example = readFileSync(fileURLToPath(new URL('../examples/dcgm-h100x8.prom', import.meta.url)), 'utf8');
const SCRAPED = 1_767_000_000_000;

/** A well-formed UUID of GPU `gpu` of node-a. */
const uuidOf = (gpu: number): string => `GPU-aaaaaaaa-0000-4000-8000-${String(gpu).padStart(12, '0')}`;

/** Labels of GPU `gpu` on `host`, in the exporter's order. */
const labels = (gpu: number, extra = '', host = 'Hostname="node-a"', uuid = uuidOf(gpu)): string =>
  `{gpu="${gpu}",UUID="${uuid}",pci_bus_id="00000000:0${gpu}:00.0",device="nvidia${gpu}",modelName="NVIDIA H100 80GB HBM3",${host},DCGM_FI_DRIVER_VERSION="580.105.08"${extra}}`;

const fb = (gpu: number, free: number, used: number, reserved: number, extra = ''): string =>
  [
    `DCGM_FI_DEV_FB_FREE${labels(gpu, extra)} ${free}`,
    `DCGM_FI_DEV_FB_USED${labels(gpu, extra)} ${used}`,
    `DCGM_FI_DEV_FB_RESERVED${labels(gpu, extra)} ${reserved}`,
  ].join('\n');

describe('parseDcgmText on the real GPU Operator sample (no FB series)', () => {
  const parsed = parseDcgmText(realSample, { scrapedAtMs: SCRAPED });

  test('reads 8 GPUs of node gpu-node-1 in ordinal order', () => {
    expect(parsed.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(parsed.gpus.map((g) => g.node))).toEqual(new Set(['gpu-node-1']));
    expect(parsed.gpus[0]?.uuid).toBe('GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005');
    expect(parsed.gpus[5]?.pciBusId).toBe('00000000:A8:00.0');
    expect(parsed.gpus.every((g) => g.model === 'NVIDIA H100 80GB HBM3')).toBe(true);
  });

  test('has no memory figures, and says which counters to enable', () => {
    expect(parsed.gpus.every((g) => g.memory === null)).toBe(true);
    expect(parsed.problems).toHaveLength(1);
    expect(parsed.problems[0]).toMatch(/8 GPU\(s\) report no DCGM_FI_DEV_FB_FREE\/FB_USED series .*Add DCGM_FI_DEV_FB_FREE/);
  });

  test('puts the vllm pod on GPU 0 only', () => {
    expect(parsed.gpus[0]?.pods).toEqual([{ namespace: 'dynamo-workload', pod: 'vllm-agg-0-vllmdecodeworker-s65j5', container: 'main' }]);
    expect(parsed.gpus.slice(1).every((g) => g.pods.length === 0)).toBe(true);
  });

  test('reads utilisation, no profiling figures, no XID, no MIG, scrape time as sample time', () => {
    for (const gpu of parsed.gpus) {
      expect(gpu.utilPercent).toBe(0);
      expect(gpu.smActive).toBeNull();
      expect(gpu.grEngineActive).toBeNull();
      expect(gpu.xid).toBe(0);
      expect(gpu.mig).toBe(false);
      expect(gpu.sampledAtMs).toBe(SCRAPED);
    }
    expect(parsed.skippedLines).toBe(0);
  });
});

describe('parseDcgmText on the example dump (real sample plus FB series)', () => {
  const parsed = parseDcgmText(example, { scrapedAtMs: SCRAPED });

  test('computes total = free + used + reserved without FB_TOTAL', () => {
    expect(parsed.gpus).toHaveLength(8);
    expect(parsed.gpus[0]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 71_680, freeMiB: 9_355, reservedMiB: 524 });
    expect(parsed.gpus[3]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 1, freeMiB: 81_034, reservedMiB: 524 });
    expect(parsed.problems).toEqual([]);
    expect(parsed.skippedLines).toBe(0);
  });
});

describe('node of a series', () => {
  test('reads the lower-case hostname label of newer exporters', () => {
    const parsed = parseDcgmText(fb(0, 80_000, 1_000, 559).replaceAll('Hostname=', 'hostname='), { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => g.node)).toEqual(['node-a']);
  });

  test('prefers Hostname when both labels are present', () => {
    const text = `DCGM_FI_DEV_GPU_UTIL${labels(0, '', 'Hostname="node-upper",hostname="node-lower"')} 5`;
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0]?.node).toBe('node-upper');
  });

  test("the scrape target's node beats the label (the exporter pod name when NODE_NAME is unset)", () => {
    const text = `DCGM_FI_DEV_GPU_UTIL${labels(0, '', 'Hostname="nvidia-dcgm-exporter-x7k2p"')} 5`;
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED, node: 'gpu-node-7' }).gpus[0]?.node).toBe('gpu-node-7');
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0]?.node).toBe('nvidia-dcgm-exporter-x7k2p');
  });

  test('drops series that name no node at all, and says how to fix it', () => {
    const text = `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="${uuidOf(1)}"} 5`;
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toEqual([]);
    expect(parsed.problems.join('\n')).toMatch(/1 DCGM series .* name no node.*NODE_NAME/);
  });
});

describe('series per GPU', () => {
  test('per-pod series of one GPU collapse into one sample listing every pod', () => {
    const podA = ',container="main",namespace="team-a",pod="llm-a",pod_uid=""';
    const podB = ',container="main",namespace="team-b",pod="llm-b",pod_uid=""';
    const text = [fb(0, 60_000, 21_000, 559, podA), fb(0, 60_000, 21_000, 559, podB), fb(1, 81_000, 0, 559)].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toHaveLength(2);
    expect(parsed.gpus[0]?.pods).toEqual([
      { namespace: 'team-a', pod: 'llm-a', container: 'main' },
      { namespace: 'team-b', pod: 'llm-b', container: 'main' },
    ]);
    expect(parsed.gpus[0]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 21_000, freeMiB: 60_000, reservedMiB: 559 });
    expect(parsed.skippedLines).toBe(0);
  });

  test('when per-pod series disagree, keeps the reading safer for placement', () => {
    const podA = ',pod="a",namespace="n",container="c"';
    const podB = ',pod="b",namespace="n",container="c"';
    const text = [
      fb(0, 50_000, 30_000, 559, podA),
      fb(0, 52_000, 28_000, 559, podB),
      `DCGM_FI_DEV_GPU_UTIL${labels(0, podA)} 40`,
      `DCGM_FI_DEV_GPU_UTIL${labels(0, podB)} 70`,
    ].join('\n');
    const gpu = parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0];
    expect(gpu?.memory?.freeMiB).toBe(50_000);
    expect(gpu?.memory?.usedMiB).toBe(30_000);
    expect(gpu?.utilPercent).toBe(70);
  });

  test('MIG instance series mark the GPU as MIG and leave its device memory alone', () => {
    const instance = (id: number): string => `,GPU_I_PROFILE="3g.40gb",GPU_I_ID="${id}"`;
    const text = [
      fb(0, 70_000, 11_000, 559),
      `DCGM_FI_DEV_FB_USED${labels(0, instance(1))} 39000`,
      `DCGM_FI_DEV_FB_FREE${labels(0, instance(1))} 1000`,
      `DCGM_FI_DEV_FB_USED${labels(1, instance(2))} 500`,
      fb(2, 81_000, 0, 559),
    ].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => [g.index, g.mig])).toEqual([
      [0, true],
      [1, true],
      [2, false],
    ]);
    expect(parsed.gpus[0]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 11_000, freeMiB: 70_000, reservedMiB: 559 });
    // A MIG-only GPU has no device memory; it is not reported as a missing-counter problem (placement excludes MIG anyway).
    expect(parsed.gpus[1]?.memory).toBeNull();
    expect(parsed.problems).toEqual([]);
  });

  test('reads the last XID, also from a MIG instance', () => {
    const text = [`DCGM_FI_DEV_XID_ERRORS${labels(0)} 0`, `DCGM_FI_DEV_XID_ERRORS${labels(1, ',GPU_I_PROFILE="1g.10gb",GPU_I_ID="3"')} 79`].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => [g.xid, g.mig])).toEqual([
      [0, false],
      [79, true],
    ]);
  });

  test('reads SM and graphics-engine activity ratios', () => {
    const text = [`DCGM_FI_PROF_SM_ACTIVE${labels(0)} 0.375`, `DCGM_FI_PROF_GR_ENGINE_ACTIVE${labels(0)} 0.5`].join('\n');
    const gpu = parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0];
    expect([gpu?.smActive, gpu?.grEngineActive]).toEqual([0.375, 0.5]);
  });

  test('a GPU without a UUID label is left out (it cannot be named in NVIDIA_VISIBLE_DEVICES), with a problem saying so', () => {
    const text = 'DCGM_FI_DEV_GPU_UTIL{gpu="3",Hostname="node-b",modelName="NVIDIA H100 80GB HBM3"} 12';
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toEqual([]);
    expect(parsed.faults.excludedGpus['missing-uuid']).toBe(1);
    expect(parsed.problems.join('\n')).toMatch(/excluded 1 GPU\(s\) without a UUID label \(first: node "node-b" GPU 3\)/);
  });

  test('series of other entities (no gpu label) and other exporters are ignored without counting', () => {
    const text = [
      'DCGM_FI_DEV_NVSWITCH_TEMPERATURE_CURRENT{nvswitch="0",Hostname="node-a"} 40',
      'go_goroutines 12',
      'process_cpu_seconds_total{job="x"} NaN',
      `DCGM_FI_DEV_GPU_UTIL${labels(0)} 1`,
    ].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => g.uuid)).toEqual([uuidOf(0)]);
    expect(parsed.skippedLines).toBe(0);
  });
});

describe('FB_TOTAL', () => {
  test('fills in FB_RESERVED on exporters that have FB_TOTAL but no FB_RESERVED', () => {
    const text = [`DCGM_FI_DEV_FB_FREE${labels(0)} 80000`, `DCGM_FI_DEV_FB_USED${labels(0)} 1000`, `DCGM_FI_DEV_FB_TOTAL${labels(0)} 81559`].join('\n');
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 1000, freeMiB: 80_000, reservedMiB: 559 });
  });

  test('derives free memory from FB_TOTAL when FB_FREE is missing', () => {
    const text = [`DCGM_FI_DEV_FB_USED${labels(0)} 1000`, `DCGM_FI_DEV_FB_RESERVED${labels(0)} 559`, `DCGM_FI_DEV_FB_TOTAL${labels(0)} 81559`].join('\n');
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0]?.memory).toEqual({ totalMiB: 81_559, usedMiB: 1000, freeMiB: 80_000, reservedMiB: 559 });
  });

  test('counts a reserved-less exporter without FB_TOTAL as reserving nothing', () => {
    const text = [`DCGM_FI_DEV_FB_FREE${labels(0)} 80000`, `DCGM_FI_DEV_FB_USED${labels(0)} 1000`].join('\n');
    expect(parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0]?.memory).toEqual({ totalMiB: 81_000, usedMiB: 1000, freeMiB: 80_000, reservedMiB: 0 });
  });

  test('reports an FB_TOTAL that disagrees with free + used + reserved', () => {
    const text = [fb(0, 40_000, 1_000, 559), `DCGM_FI_DEV_FB_TOTAL${labels(0)} 81559`].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus[0]?.memory?.totalMiB).toBe(41_559);
    expect(parsed.problems.join('\n')).toMatch(/DCGM_FI_DEV_FB_TOTAL is 81559 MiB but free \+ used \+ reserved is 41559 MiB/);
  });

  test('FB_USED alone is not enough to know the memory', () => {
    const parsed = parseDcgmText(`DCGM_FI_DEV_FB_USED${labels(0)} 1000`, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus[0]?.memory).toBeNull();
  });
});

describe('bad lines are skipped and counted; the rest survives', () => {
  const good = [fb(0, 80_000, 1_000, 559), fb(1, 70_000, 11_000, 559)];
  const bad = {
    nan: `DCGM_FI_DEV_GPU_UTIL${labels(0)} NaN`,
    inf: `DCGM_FI_DEV_GPU_UTIL${labels(1)} +Inf`,
    garbage: 'this is not a metric line at all',
    unclosedQuote: `DCGM_FI_DEV_FB_USED{gpu="0",UUID="${uuidOf(0)}} 5`,
    // The package throws on this one (no comma between labels).
    missingComma: `DCGM_FI_DEV_FB_USED{gpu="0" UUID="${uuidOf(0)}"} 5`,
    badValue: `DCGM_FI_DEV_FB_USED${labels(0)} 12abc`,
    badTimestamp: `DCGM_FI_DEV_FB_USED${labels(0)} 12 yesterday`,
    badType: '# TYPE DCGM_FI_DEV_FB_USED',
    badName: '0DCGM_FI_DEV_FB_USED{gpu="0"} 1',
    blank: `DCGM_FI_DEV_GPU_UTIL${labels(0)} 2147483632`,
    duplicate: `DCGM_FI_DEV_FB_USED${labels(1)} 99999`,
  };

  test('each kind of bad line between good ones', () => {
    const lines = [good[0], bad.nan, bad.garbage, bad.missingComma, bad.unclosedQuote, bad.badValue, bad.badTimestamp, bad.badType, bad.badName, bad.blank, good[1], bad.inf, bad.duplicate];
    const parsed = parseDcgmText(lines.join('\n'), { scrapedAtMs: SCRAPED });
    expect(parsed.skippedLines).toBe(11);
    expect(parsed.gpus.map((g) => g.memory)).toEqual([
      { totalMiB: 81_559, usedMiB: 1_000, freeMiB: 80_000, reservedMiB: 559 },
      // The duplicate FB_USED of GPU 1 (99999) was dropped: the first one counts.
      { totalMiB: 81_559, usedMiB: 11_000, freeMiB: 70_000, reservedMiB: 559 },
    ]);
    expect(parsed.gpus.map((g) => g.utilPercent)).toEqual([null, null]);
    const problems = parsed.problems.join('\n');
    expect(problems).toMatch(/skipped 7 malformed line\(s\), first at line 5 \(this is not a metric line at all\)/);
    expect(problems).toMatch(/skipped 2 non-finite line\(s\), first at line 4 /);
    expect(problems).toMatch(/skipped 1 blank line\(s\)/);
    expect(problems).toMatch(/skipped 1 duplicate line\(s\), first at line 17 .*first was kept/);
  });

  test('a line the package throws on does not lose the lines after it', () => {
    const parsed = parseDcgmText([bad.missingComma, ...good].join('\n'), { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toHaveLength(2);
    expect(parsed.skippedLines).toBe(1);
  });

  test('a duplicate with its labels in another order is still a duplicate', () => {
    const reordered = `DCGM_FI_DEV_FB_USED{UUID="${uuidOf(0)}",gpu="0",pci_bus_id="00000000:00:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-a",DCGM_FI_DRIVER_VERSION="580.105.08"} 5`;
    const parsed = parseDcgmText([good[0], reordered].join('\n'), { scrapedAtMs: SCRAPED });
    expect(parsed.skippedLines).toBe(1);
    expect(parsed.gpus[0]?.memory?.usedMiB).toBe(1_000);
  });

  test('CRLF line ends, blank lines and plain comments are fine', () => {
    const text = ['# a comment', '', ...good, ''].join('\r\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toHaveLength(2);
    expect(parsed.skippedLines).toBe(0);
  });

  test('label values with escaped quotes, backslashes and braces', () => {
    const text = `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="${uuidOf(1)}",Hostname="node-a",pod="we\\"ird}\\\\",namespace="n",container="c"} 7`;
    const gpu = parseDcgmText(text, { scrapedAtMs: SCRAPED }).gpus[0];
    expect(gpu?.pods).toEqual([{ namespace: 'n', pod: 'we"ird}\\', container: 'c' }]);
    expect(gpu?.utilPercent).toBe(7);
  });
});

describe('sample time', () => {
  test("a series' own timestamp is its sample time; the oldest one of a GPU counts", () => {
    const text = [
      `DCGM_FI_DEV_FB_FREE${labels(0)} 80000 1767000005000`,
      `DCGM_FI_DEV_FB_USED${labels(0)} 1000 1767000001000`,
      `DCGM_FI_DEV_FB_RESERVED${labels(0)} 559 1767000003000`,
      `DCGM_FI_DEV_GPU_UTIL${labels(1)} 3`,
    ].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED + 60_000 });
    expect(parsed.gpus.map((g) => g.sampledAtMs)).toEqual([1_767_000_001_000, SCRAPED + 60_000]);
  });
});

describe('DcgmTextParser (reused across scrapes)', () => {
  test('gives the same result as a one-off parse, scrape after scrape', () => {
    const parser = new DcgmTextParser();
    const first = renderDcgmText([h100('n1', 0, SCRAPED), h100('n1', 1, SCRAPED, { pods: [{ namespace: 'a', pod: 'p', container: 'c' }] })]);
    const second = renderDcgmText([h100('n1', 1, SCRAPED, { utilPercent: 55 }), h100('n2', 0, SCRAPED)]);
    for (const text of [first, first, second, first, second]) {
      const reused = parser.parse(text, { scrapedAtMs: SCRAPED });
      const oneOff = parseDcgmText(text, { scrapedAtMs: SCRAPED });
      expect(reused).toEqual(oneOff);
      // Duplicate detection starts afresh for every scrape.
      expect(reused.skippedLines).toBe(0);
    }
  });

  test('still counts duplicates inside one scrape', () => {
    const parser = new DcgmTextParser();
    const text = renderDcgmText([h100('n1', 0, SCRAPED)]);
    parser.parse(text, { scrapedAtMs: SCRAPED });
    expect(parser.parse(text + text, { scrapedAtMs: SCRAPED }).skippedLines).toBeGreaterThan(0);
  });
});

describe('time from outside is clamped to the time of arrival', () => {
  test('a series stamped ahead of its arrival gets the arrival time, and the lead is counted', () => {
    const yearMs = 365 * 24 * 3600 * 1000;
    const text = [`DCGM_FI_DEV_FB_FREE${labels(0)} 80000 ${SCRAPED + yearMs}`, `DCGM_FI_DEV_FB_USED${labels(0)} 1000`, `DCGM_FI_DEV_FB_RESERVED${labels(0)} 559`, `DCGM_FI_DEV_GPU_UTIL${labels(1)} 3 ${SCRAPED - 5_000}`].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED, receivedAtMs: SCRAPED + 200 });
    expect(parsed.gpus.map((g) => g.sampledAtMs)).toEqual([SCRAPED, SCRAPED - 5_000]);
    expect(parsed.faults.clockSkewedGpus).toBe(1);
    expect(parsed.faults.maxClockSkewSeconds).toBeCloseTo(yearMs / 1000 - 0.2, 0);
    expect(parsed.problems.join('\n')).toMatch(/1 GPU\(s\) carry sample times up to 3153600\d s ahead of when their data arrived .*Check the clock/);
  });

  test('a scrape time (a dump file\'s modification time) ahead of the arrival is clamped the same way', () => {
    const parsed = parseDcgmText(fb(0, 80_000, 1_000, 559), { scrapedAtMs: SCRAPED + 3_600_000, receivedAtMs: SCRAPED });
    expect(parsed.gpus[0]?.sampledAtMs).toBe(SCRAPED);
    expect(parsed.faults.clockSkewedGpus).toBe(1);
  });

  test('a lead within a second is clamped without a problem (clocks a little apart)', () => {
    const parsed = parseDcgmText(`DCGM_FI_DEV_GPU_UTIL${labels(0)} 3 ${SCRAPED + 400}`, { scrapedAtMs: SCRAPED, receivedAtMs: SCRAPED });
    expect(parsed.gpus[0]?.sampledAtMs).toBe(SCRAPED);
    expect(parsed.faults.clockSkewedGpus).toBe(0);
    expect(parsed.problems.join('\n')).not.toMatch(/ahead/);
  });

  test('a timestamp beyond 2^53 ms is malformed, not a time that never ages', () => {
    const parsed = parseDcgmText(`DCGM_FI_DEV_GPU_UTIL${labels(0)} 3 ${'9'.repeat(400)}`, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toEqual([]);
    expect(parsed.skippedLines).toBe(1);
  });
});

describe('exporter data is untrusted (fixtures under dcgm/fixtures/untrusted)', () => {
  const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`./fixtures/untrusted/${name}`, import.meta.url)), 'utf8');
  const GOOD = 'GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005';
  const TAMPERED = 'GPU-bc5610b9-79c8-fedd-8899-07539c7f868a';

  test.each([
    ['uuid-all.prom', 'invalid-uuid', /excluded 1 GPU\(s\) with a UUID label that is not an NVIDIA GPU UUID \(first: UUID "all" on node "gpu-node-1" GPU 1\)/],
    ['uuid-list.prom', 'invalid-uuid', /UUID "GPU-1,GPU-2" on node "gpu-node-1" GPU 1/],
    ['uuid-none.prom', 'invalid-uuid', /UUID "none" on node/],
    ['hostname-traversal.prom', 'invalid-node', /excluded 1 GPU\(s\) on a node name that is not valid \(first: node "node a\/..\/b" GPU 1/],
    ['hostname-300-chars.prom', 'invalid-node', /node "gpu-node-a{71}\.\.\." GPU 1 .*DNS-1123 subdomain of at most 253 characters/],
    ['fb-free-1pib.prom', 'implausible-memory', /free \+ used \+ reserved is 1073742349 MiB, but a "NVIDIA H100 80GB HBM3" holds at most 86016 MiB/],
    ['uuid-on-two-nodes.prom', 'conflicting-series', new RegExp(`${TAMPERED} on nodes "gpu-node-1" and "gpu-node-2"`)],
    ['uuid-two-ordinals.prom', 'conflicting-series', new RegExp(`${TAMPERED} as GPU 1 and GPU 2 of node "gpu-node-1"`)],
  ])('%s: the GPU is left out with its reason, counted; the other GPU stays', (name, reason, problem) => {
    const parsed = parseDcgmText(fixture(name), { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => g.uuid)).toEqual([GOOD]);
    expect(parsed.faults.excludedGpus).toEqual(expect.objectContaining({ [reason]: 1 }));
    expect(Object.values(parsed.faults.excludedGpus).reduce((a, b) => a + b, 0)).toBe(1);
    expect(parsed.problems.join('\n')).toMatch(problem);
  });

  test('timestamps-ahead.prom: the series stamped in the year 2100 get the arrival time', () => {
    const parsed = parseDcgmText(fixture('timestamps-ahead.prom'), { scrapedAtMs: SCRAPED, receivedAtMs: SCRAPED + 100 });
    expect(parsed.gpus.map((g) => [g.uuid, g.sampledAtMs])).toEqual([
      [GOOD, SCRAPED],
      [TAMPERED, SCRAPED + 100],
    ]);
    expect(parsed.faults.clockSkewedGpus).toBe(1);
  });

  test('only one physical GPU UUID passes: MIG device UUIDs mark the GPU as MIG', () => {
    const mig = 'MIG-1b2c3d4e-0000-4000-8000-00000000abcd';
    const parsed = parseDcgmText(`DCGM_FI_DEV_GPU_UTIL${labels(0, '', 'Hostname="node-a"', mig)} 3`, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => [g.uuid, g.mig])).toEqual([[mig, true]]);
  });

  test('two UUIDs on one node and ordinal: both left out', () => {
    const text = [fb(0, 80_000, 1_000, 559), `DCGM_FI_DEV_GPU_UTIL${labels(0, '', 'Hostname="node-a"', uuidOf(7))} 3`, fb(1, 80_000, 1_000, 559)].join('\n');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => g.uuid)).toEqual([uuidOf(1)]);
    expect(parsed.faults.excludedGpus['conflicting-series']).toBe(2);
    expect(parsed.faults.excludedUuids.sort()).toEqual([uuidOf(0), uuidOf(7)].sort());
    expect(parsed.problems.join('\n')).toMatch(/node "node-a" GPU 0 reports UUIDs/);
  });

  test.each([
    ['a negative reading', [fb(0, 80_000, -1, 559)], /DCGM_FI_DEV_FB_USED is -1 MiB/],
    ['free + used + reserved above FB_TOTAL', [fb(0, 80_000, 1_000, 559), `DCGM_FI_DEV_FB_TOTAL${labels(0)} 40960`], /is 81559 MiB, more than its DCGM_FI_DEV_FB_TOTAL of 40960 MiB/],
    ['an FB_TOTAL above what the model holds', [`DCGM_FI_DEV_FB_USED${labels(0)} 1000`, `DCGM_FI_DEV_FB_TOTAL${labels(0)} 900000`], /DCGM_FI_DEV_FB_TOTAL is 900000 MiB, but a "NVIDIA H100 80GB HBM3" holds at most 86016 MiB/],
  ])('memory figures the GPU cannot have: %s', (_what, lines, problem) => {
    const parsed = parseDcgmText([...lines, fb(1, 80_000, 1_000, 559)].join('\n'), { scrapedAtMs: SCRAPED });
    expect(parsed.gpus.map((g) => g.uuid)).toEqual([uuidOf(1)]);
    expect(parsed.faults.excludedGpus['implausible-memory']).toBe(1);
    expect(parsed.problems.join('\n')).toMatch(problem);
  });

  test('a model without a stated size is bounded by the largest GPU memory there is', () => {
    const text = fb(0, 2_000_000, 1_000, 559).replaceAll('NVIDIA H100 80GB HBM3', 'NVIDIA H200');
    const parsed = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toEqual([]);
    expect(parsed.problems.join('\n')).toMatch(/no GPU holds more than 1048576 MiB|"NVIDIA H200" holds at most 1048576 MiB/);
  });

  test('a huge label value is never echoed whole in a problem', () => {
    const parsed = parseDcgmText(`DCGM_FI_DEV_GPU_UTIL${labels(0, '', 'Hostname="node-a"', 'x'.repeat(100_000))} 3`, { scrapedAtMs: SCRAPED });
    expect(parsed.gpus).toEqual([]);
    expect(parsed.problems.join('\n').length).toBeLessThan(1_000);
  });
});

describe('linear cost on hostile input', () => {
  /** Median wall time of `runs` calls, ms. */
  const timeOf = (f: () => void, runs = 3): number => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      f();
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b)[Math.floor(runs / 2)] as number;
  };

  test('a malformed 100,000-digit value is refused in time linear in its length', () => {
    const digits = `DCGM_FI_DEV_FB_FREE${labels(0)} ${'1'.repeat(100_000)}x`;
    // Baseline: well-formed text of the same length.
    const lines: string[] = [];
    while (lines.join('\n').length < digits.length) lines.push(`DCGM_FI_DEV_GPU_UTIL${labels(lines.length % 8)} ${lines.length}`);
    const baseline = lines.join('\n');
    parseDcgmText(baseline, { scrapedAtMs: SCRAPED });
    const baselineMs = timeOf(() => parseDcgmText(baseline, { scrapedAtMs: SCRAPED }));
    // One run only: the backtracking regex took seconds for this.
    const digitsMs = timeOf(() => expect(parseDcgmText(digits, { scrapedAtMs: SCRAPED }).skippedLines).toBe(1), 1);
    expect(digitsMs).toBeLessThan(10 * baselineMs + 50);
  });

  /** A dump of `gpus` GPUs with `pods` per-pod series each (one family). */
  const perPodDump = (gpus: number, pods: number): string => {
    const parts: string[] = [];
    for (let g = 0; g < gpus; g++) {
      for (let p = 0; p < pods; p++) parts.push(`DCGM_FI_DEV_FB_USED${labels(g, `,container="main",namespace="ns",pod="pod-${p}",pod_uid=""`)} 5`);
    }
    return parts.join('\n');
  };

  test('per-pod series in text cost linear time, past the label-block cache too (8 GPUs x 4,000 pods vs 8 x 250)', () => {
    const small = perPodDump(8, 250);
    const large = perPodDump(8, 4_000);
    parseDcgmText(small, { scrapedAtMs: SCRAPED });
    const smallMs = timeOf(() => parseDcgmText(small, { scrapedAtMs: SCRAPED }));
    const largeMs = timeOf(() => parseDcgmText(large, { scrapedAtMs: SCRAPED }), 1);
    // 16x the input: linear is about 16x, quadratic about 256x.
    expect(largeMs).toBeLessThan(3 * 16 * smallMs + 100);
  });

  test('a GPU mapped to more pods than any GPU serves lists the first 128 and counts as full', () => {
    const parsed = parseDcgmText(perPodDump(1, 500), { scrapedAtMs: SCRAPED });
    expect(parsed.gpus[0]?.pods).toHaveLength(128);
    expect(parsed.problems.join('\n')).toMatch(/1 GPU\(s\) .* are mapped to more than 128 pods/);
  });

  test('one label set under 50,000 invented family names costs linear time', () => {
    const text = (n: number): string => Array.from({ length: n }, (_, i) => `DCGM_FI_X${i}${labels(0)} 1`).join('\n');
    const small = text(3_125);
    const large = text(50_000);
    parseDcgmText(small, { scrapedAtMs: SCRAPED });
    const smallMs = timeOf(() => parseDcgmText(small, { scrapedAtMs: SCRAPED }));
    const largeMs = timeOf(() => parseDcgmText(large, { scrapedAtMs: SCRAPED }), 1);
    expect(largeMs).toBeLessThan(3 * 16 * smallMs + 100);
  });

  test('a line longer than many pieces costs linear time', () => {
    const text = `DCGM_FI_DEV_FB_FREE${labels(0)} ${'1'.repeat(2_000_000)}x\n${fb(1, 80_000, 1_000, 559)}\n`;
    const inPieces = (size: number) => (): void => {
      const scrape = new DcgmTextParser().begin({ scrapedAtMs: SCRAPED });
      for (let at = 0; at < text.length; at += size) scrape.write(text.slice(at, at + size));
      expect(scrape.end().skippedLines).toBe(1);
    };
    inPieces(text.length)();
    const wholeMs = timeOf(inPieces(text.length));
    // 2,000 pieces: joining the line once is linear; growing it by concatenation would copy it 2,000 times.
    const piecesMs = timeOf(inPieces(1_000), 1);
    expect(piecesMs).toBeLessThan(10 * wholeMs + 50);
  });

  test('a scrape fed in pieces, cut anywhere, reads as the whole text', () => {
    const text = `${example}\n${perPodDump(2, 50)}\n`;
    const whole = parseDcgmText(text, { scrapedAtMs: SCRAPED });
    const scrape = new DcgmTextParser().begin({ scrapedAtMs: SCRAPED });
    for (let at = 0; at < text.length; at += 97) scrape.write(text.slice(at, at + 97));
    expect(scrape.end()).toEqual(whole);
  });
});
