/**
 * DCGM ingestion on hostile input: figures for `npm run bench`, each beside a baseline from
 * the same run. Also runs alone: `node .bench-dist/bench/ingestion.js` (after `npm run build:bench`).
 *
 * - a malformed 100,000-digit value, against well-formed text of the same length;
 * - per-pod series, cost per series at 20,000 and 125,000 pods per GPU against 2,000;
 * - peak RSS of a child process reading an 86 MB per-pod dump through FileMetricsSource,
 *   against one that only reads the file;
 * - RSS growth of a child process scraping a 200 MB exporter body under the default
 *   metrics.maxBodyBytes, against scraping a normal 8-GPU body.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { DcgmTextParser, parseDcgmText } from '../dcgm/parseDcgmText.js';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const distDcgm = path.resolve(here, '../dcgm');

export type BenchRow = [measure: string, value: string, target: string, status: string];

const ok = (b: boolean): string => (b ? 'met' : 'MISSED');

const deviceLabels = (gpu: number): string =>
  `gpu="${gpu}",UUID="GPU-c4529c8d-69c4-b61d-e0bc-7b24600960${String(gpu).padStart(2, '0')}",pci_bus_id="00000000:53:00.0",device="nvidia${gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="580.105.08"`;

/** One series per GPU and pod, as dcgm-exporter writes them with the Kubernetes mapping on. */
function* perPodLines(gpus: number, pods: number, families: readonly string[]): Generator<string> {
  for (const family of families) {
    for (let g = 0; g < gpus; g++) {
      for (let p = 0; p < pods; p++) yield `${family}{${deviceLabels(g)},container="main",namespace="ns",pod="pod-${p}",pod_uid=""} ${5 + (p % 7)}\n`;
    }
  }
}


/** Median of `runs` timings of `f`, ms. */
function timeMs(f: () => void, runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

function benchMalformedDigits(): { digitsMs: number; baselineMs: number } {
  const digits = `DCGM_FI_DEV_FB_FREE{${deviceLabels(0)}} ${'1'.repeat(100_000)}x\n`;
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < digits.length; i++) {
    const line = `DCGM_FI_DEV_GPU_UTIL{${deviceLabels(i % 8)}} ${i}\n`;
    lines.push(line);
    length += line.length;
  }
  const baseline = lines.join('');
  parseDcgmText(baseline, { scrapedAtMs: 0 });
  parseDcgmText(digits, { scrapedAtMs: 0 });
  return { baselineMs: timeMs(() => parseDcgmText(baseline, { scrapedAtMs: 0 }), 7), digitsMs: timeMs(() => parseDcgmText(digits, { scrapedAtMs: 0 }), 7) };
}

/**
 * Cost per series (µs) of a one-family per-pod scrape of 8 GPUs, fed to the parser in 1 MiB
 * pieces as a source does (building the pieces is part of every size's figure alike).
 */
function perSeriesMicros(pods: number, runs: number): { ms: number; perSeriesUs: number; megabytes: number } {
  let chars = 0;
  const ms = timeMs(() => {
    const scrape = new DcgmTextParser().begin({ scrapedAtMs: 0 });
    let piece = '';
    chars = 0;
    for (const line of perPodLines(8, pods, ['DCGM_FI_DEV_FB_USED'])) {
      piece += line;
      if (piece.length >= 1 << 20) {
        scrape.write(piece);
        chars += piece.length;
        piece = '';
      }
    }
    scrape.write(piece);
    chars += piece.length;
    const parsed = scrape.end();
    if (parsed.gpus.length !== 8) throw new Error(`parsed ${parsed.gpus.length} GPUs, expected 8`);
  }, runs);
  return { ms, perSeriesUs: (ms * 1000) / (8 * pods), megabytes: chars / 1e6 };
}

async function writeDump(file: string, gpus: number, pods: number, families: readonly string[]): Promise<number> {
  const out = createWriteStream(file);
  let buffer = '';
  for (const line of perPodLines(gpus, pods, families)) {
    buffer += line;
    if (buffer.length >= 1 << 20) {
      if (!out.write(buffer)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      buffer = '';
    }
  }
  out.end(buffer);
  await new Promise<void>((resolve) => out.once('finish', () => resolve()));
  return (await stat(file)).size;
}

/** Run a module script in a child process; its last stdout line is JSON. */
async function childJson<T>(script: string, args: string[]): Promise<T> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, ...args], { maxBuffer: 1 << 20, timeout: 300_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as T;
}

const PEAK_RSS = `const peakRssMb = async () => Number(/VmHWM:\\s+(\\d+)/.exec(await (await import('node:fs/promises')).readFile('/proc/self/status', 'utf8'))[1]) / 1024;`;

/** Peak RSS of reading a dump through FileMetricsSource, and of only reading the file in the same pieces. */
async function benchDumpMemory(file: string): Promise<{ parsedMb: number; readOnlyMb: number; gpus: number; seconds: number }> {
  const sources = pathToFileURL(path.join(distDcgm, 'sources.js')).href;
  const parsed = await childJson<{ rssMb: number; gpus: number; seconds: number }>(
    `${PEAK_RSS}
     const { FileMetricsSource } = await import(${JSON.stringify(sources)});
     const t0 = performance.now();
     const inv = await new FileMetricsSource(process.argv[1], { maxBytes: 1 << 30 }).fetch(Date.now());
     console.log(JSON.stringify({ rssMb: await peakRssMb(), gpus: inv.gpus.length, seconds: (performance.now() - t0) / 1000 }));`,
    [file],
  );
  const readOnly = await childJson<{ rssMb: number }>(
    `${PEAK_RSS}
     const handle = await (await import('node:fs/promises')).open(process.argv[1]);
     const buffer = Buffer.allocUnsafe(1 << 20);
     const decoder = new TextDecoder();
     let chars = 0;
     for (;;) { const { bytesRead } = await handle.read(buffer, 0, buffer.length, null); if (bytesRead === 0) break; chars += decoder.decode(buffer.subarray(0, bytesRead), { stream: true }).length; }
     await handle.close();
     console.log(JSON.stringify({ rssMb: await peakRssMb(), chars }));`,
    [file],
  );
  return { parsedMb: parsed.rssMb, readOnlyMb: readOnly.rssMb, gpus: parsed.gpus, seconds: parsed.seconds };
}

/** RSS growth of one scrape under the default body limit: a 200 MB body, and a normal 8-GPU one. */
async function benchHugeBody(): Promise<{ hugeGrowthMb: number; normalGrowthMb: number; problem: string }> {
  const sources = pathToFileURL(path.join(distDcgm, 'sources.js')).href;
  const script = `${PEAK_RSS}
    const http = await import('node:http');
    const { ExporterMetricsSource } = await import(${JSON.stringify(sources)});
    const bodyBytes = Number(process.argv[1]);
    const line = 'DCGM_FI_DEV_FB_USED{${deviceLabels(0).replaceAll('"', '\\"')}} 5\\n';
    const chunk = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const pump = () => { while (sent < bodyBytes) { sent += chunk.length; if (!res.write(chunk)) { res.once('drain', pump); return; } } res.end(); };
      res.on('close', () => (sent = bodyBytes));
      pump();
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const url = 'http://127.0.0.1:' + server.address().port + '/metrics';
    global.gc?.();
    const before = await peakRssMb();
    const inv = await new ExporterMetricsSource({ targets: [{ url, node: 'gpu-node-1' }], timeoutMs: 60000 }).fetch(Date.now());
    const after = await peakRssMb();
    server.closeAllConnections(); server.close();
    console.log(JSON.stringify({ growthMb: after - before, problem: inv.problems[0] ?? '' }));`;
  const huge = await childJson<{ growthMb: number; problem: string }>(script, [String(200 * 1024 * 1024)]);
  const normal = await childJson<{ growthMb: number; problem: string }>(script, [String(64 * 1024)]);
  return { hugeGrowthMb: huge.growthMb, normalGrowthMb: normal.growthMb, problem: huge.problem };
}

export async function benchIngestion(): Promise<{ rows: BenchRow[]; results: Record<string, unknown> }> {
  const digits = benchMalformedDigits();
  const base = perSeriesMicros(2_000, 5);
  const pods20k = perSeriesMicros(20_000, 3);
  const pods125k = perSeriesMicros(125_000, 1);
  const work = await mkdtemp(path.join(tmpdir(), 'mps-injector-ingestion-'));
  let dump: Awaited<ReturnType<typeof benchDumpMemory>> & { megabytes: number };
  try {
    const file = path.join(work, 'per-pod-dump.prom');
    // 8 GPUs x 20,000 pods x 2 families: about 90 MB.
    const bytes = await writeDump(file, 8, 20_000, ['DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_GPU_UTIL']);
    dump = { ...(await benchDumpMemory(file)), megabytes: bytes / 1e6 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const body = await benchHugeBody();

  const digitsRatio = digits.digitsMs / digits.baselineMs;
  const ratio20k = pods20k.perSeriesUs / base.perSeriesUs;
  const ratio125k = pods125k.perSeriesUs / base.perSeriesUs;
  const rows: BenchRow[] = [
    ['malformed 100k-digit value, ms', `${digits.digitsMs.toFixed(2)} (${digitsRatio.toFixed(2)}x)`, `< 10x same-length text (${digits.baselineMs.toFixed(2)} ms)`, ok(digitsRatio < 10)],
    ['per-pod series, 8 GPUs x 2k pods, ms', `${base.ms.toFixed(0)} (${base.perSeriesUs.toFixed(2)} µs/series)`, 'baseline', ''],
    ['per-pod series, 8 GPUs x 20k pods, ms', `${pods20k.ms.toFixed(0)} (${ratio20k.toFixed(2)}x per series)`, '< 2x per series of 2k', ok(ratio20k < 2)],
    ['per-pod series, 8 GPUs x 125k pods (1M), ms', `${pods125k.ms.toFixed(0)} (${ratio125k.toFixed(2)}x per series)`, '< 2x per series of 2k', ok(ratio125k < 2)],
    [
      `${dump.megabytes.toFixed(0)} MB per-pod dump, peak RSS MB`,
      `${dump.parsedMb.toFixed(0)} (${(dump.parsedMb / dump.readOnlyMb).toFixed(2)}x)`,
      `< 3x reading it alone (${dump.readOnlyMb.toFixed(0)} MB)`,
      ok(dump.parsedMb < 3 * dump.readOnlyMb),
    ],
    [
      '200 MB exporter body, RSS growth MB',
      `${body.hugeGrowthMb.toFixed(0)} (normal body: ${body.normalGrowthMb.toFixed(0)})`,
      '< 64 MB (limit 8 MiB)',
      ok(body.hugeGrowthMb < 64 && /above metrics.maxBodyBytes/.test(body.problem)),
    ],
  ];
  return {
    rows,
    results: {
      malformedDigits: { ms: digits.digitsMs, baselineMs: digits.baselineMs, ratio: digitsRatio },
      perPodSeries: {
        pods2k: base,
        pods20k: { ...pods20k, ratioPerSeries: ratio20k },
        pods125k: { ...pods125k, ratioPerSeries: ratio125k },
      },
      dumpMemory: dump,
      hugeBody: body,
    },
  };
}

/** Print rows as the benchmark's table. */
export function printRows(rows: readonly BenchRow[]): void {
  const width = [44, 30, 36, 8];
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(width[i] ?? 0)).join(' | ')} |`;
  console.log(line(['measure', 'value', 'target', 'status']));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { rows, results } = await benchIngestion();
  printRows(rows);
  console.log(JSON.stringify(results, null, 2));
}
