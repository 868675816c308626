import { jest } from '@jest/globals';
import { once } from 'node:events';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderDcgmText } from './renderDcgmText.js';
import { ExporterMetricsSource, FileMetricsSource, MetricsSourceError, PrometheusMetricsSource } from './sources.js';
import { h100 } from '../testing/gpuSamples.js';

const NOW = 1_767_000_000_000;

interface LocalServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** An HTTP server on a free local port; `handle` answers each request. */
async function localServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const servers: LocalServer[] = [];
const serve = async (handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalServer> => {
  const s = await localServer(handle);
  servers.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('FileMetricsSource', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dcgm-file-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('reads a dump; by default its samples count as taken when it is read, however old the file', async () => {
    const file = join(dir, 'dump.prom');
    await writeFile(file, renderDcgmText([h100('gpu-node-1', 0, 0), h100('gpu-node-1', 1, 0)]));
    // A fresh clone or an npm install gives the example dump an old modification time.
    const mtimeMs = NOW - 42 * 86_400_000;
    await utimes(file, mtimeMs / 1000, mtimeMs / 1000);
    const inventory = await new FileMetricsSource(file).fetch(NOW);
    expect(inventory.source).toBe(`file:${file}`);
    expect(inventory.fetchedAtMs).toBe(NOW);
    expect(inventory.gpus.map((g) => [g.node, g.index, g.sampledAtMs])).toEqual([
      ['gpu-node-1', 0, NOW],
      ['gpu-node-1', 1, NOW],
    ]);
    expect(inventory.problems).toEqual([]);
  });

  test("sampleTime 'modified': the file's modification time is the sample time", async () => {
    const file = join(dir, 'dump.prom');
    await writeFile(file, renderDcgmText([h100('gpu-node-1', 0, 0)]));
    const mtimeMs = NOW - 42_000;
    await utimes(file, mtimeMs / 1000, mtimeMs / 1000);
    const inventory = await new FileMetricsSource(file, { sampleTime: 'modified' }).fetch(NOW);
    expect(inventory.gpus.map((g) => g.sampledAtMs)).toEqual([mtimeMs]);
  });

  test("a modification time in the future is clamped to when the file was read, and counted", async () => {
    const file = join(dir, 'dump.prom');
    await writeFile(file, renderDcgmText([h100('gpu-node-1', 0, 0)]));
    const yearAheadMs = NOW + 365 * 86_400_000;
    await utimes(file, yearAheadMs / 1000, yearAheadMs / 1000);
    const inventory = await new FileMetricsSource(file, { sampleTime: 'modified' }).fetch(NOW);
    const sampledAtMs = inventory.gpus[0]?.sampledAtMs ?? NaN;
    expect(sampledAtMs).toBeGreaterThanOrEqual(NOW);
    expect(sampledAtMs).toBeLessThan(NOW + 5_000);
    expect(inventory.faults?.clockSkewedGpus).toBe(1);
    expect(inventory.problems.join('\n')).toMatch(/carry sample times up to 315\d{5} s ahead/);
  });

  test('a file larger than maxBytes is refused, naming the setting', async () => {
    const file = join(dir, 'big.prom');
    await writeFile(file, renderDcgmText([h100('gpu-node-1', 0, 0)]).repeat(50));
    await expect(new FileMetricsSource(file, { maxBytes: 4096 }).fetch(NOW)).rejects.toThrow(/is \d+(\.\d)? KiB, above metrics.maxBodyBytes \(4 KiB\); .*raise metrics.maxBodyBytes/);
  });

  test('a node given to the source beats the host label', async () => {
    const file = join(dir, 'dump.prom');
    await writeFile(file, renderDcgmText([h100('exporter-pod-xyz', 0, 0)]));
    const inventory = await new FileMetricsSource(file, { node: 'gpu-node-2' }).fetch(NOW);
    expect(inventory.gpus.map((g) => g.node)).toEqual(['gpu-node-2']);
  });

  test('a missing file fails with a message naming the path and the setting', async () => {
    const file = join(dir, 'absent.prom');
    const fetching = new FileMetricsSource(file).fetch(NOW);
    await expect(fetching).rejects.toBeInstanceOf(MetricsSourceError);
    await expect(fetching).rejects.toThrow(new RegExp(`cannot read the DCGM metrics file ${file} .*ENOENT.*check metrics.file`));
  });

  test('a file without GPU series is a problem, not a failure', async () => {
    const file = join(dir, 'empty.prom');
    await writeFile(file, '# nothing here\n');
    const inventory = await new FileMetricsSource(file).fetch(NOW);
    expect(inventory.gpus).toEqual([]);
    expect(inventory.problems.join('\n')).toMatch(/holds no DCGM GPU series/);
  });
});

describe('ExporterMetricsSource', () => {
  test('scrapes every target; a slow one, a failing one and a closed port only add problems', async () => {
    const good = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderDcgmText([h100('gpu-node-1', 0, 0), h100('gpu-node-1', 1, 0)]));
    });
    const second = await serve((_req, res) => {
      res.writeHead(200).end(renderDcgmText([h100('exporter-pod-abc', 0, 0, { uuid: 'GPU-5ec0d000-0000-4000-8000-000000000000' })]));
    });
    // Never answers: the scrape must give up at its own timeout.
    const slow = await serve(() => undefined);
    const broken = await serve((_req, res) => {
      res.writeHead(500, 'Internal Server Error').end('dcgm failed');
    });
    const closed = await localServer(() => undefined);
    await closed.close();

    const source = new ExporterMetricsSource({
      targets: [
        { url: `${good.url}/metrics` },
        { url: `${slow.url}/metrics` },
        { url: `${second.url}/metrics`, node: 'gpu-node-2' },
        { url: `${broken.url}/metrics` },
        { url: `${closed.url}/metrics` },
      ],
      timeoutMs: 300,
    });
    const inventory = await source.fetch(NOW);

    expect(inventory.source).toBe('exporters:2/5');
    expect(inventory.gpus.map((g) => [g.node, g.index, g.sampledAtMs])).toEqual([
      ['gpu-node-1', 0, NOW],
      ['gpu-node-1', 1, NOW],
      ['gpu-node-2', 0, NOW],
    ]);
    expect(inventory.problems).toHaveLength(3);
    const problems = inventory.problems.join('\n');
    expect(problems).toContain(`${slow.url}/metrics: no answer within 300 ms; check that the dcgm-exporter pod is up and reachable, or raise metrics.timeoutMs`);
    expect(problems).toContain(`${broken.url}/metrics: HTTP 500 Internal Server Error; check that dcgm-exporter is healthy`);
    expect(problems).toMatch(new RegExp(`${closed.url}/metrics: request failed \\(ECONNREFUSED\\); check the URL`));
    expect(good.requests).toEqual(['/metrics']);
  });

  test('a GPU reported by two targets of one node is kept once, with a problem', async () => {
    const body = renderDcgmText([h100('gpu-node-1', 0, 0)]);
    const a = await serve((_req, res) => res.end(body));
    const b = await serve((_req, res) => res.end(body));
    const inventory = await new ExporterMetricsSource({ targets: [{ url: a.url }, { url: b.url }], timeoutMs: 1000 }).fetch(NOW);
    expect(inventory.gpus).toHaveLength(1);
    expect(inventory.problems.join('\n')).toMatch(/was already reported by .*kept the first/);
  });

  test('one UUID reported on two nodes by two exporters is left out, with a reason, and counted', async () => {
    const shared = h100('gpu-node-1', 0, 0);
    const a = await serve((_req, res) => res.end(renderDcgmText([shared, h100('gpu-node-1', 1, 0)])));
    const b = await serve((_req, res) => res.end(renderDcgmText([{ ...shared, node: 'gpu-node-2' }])));
    const inventory = await new ExporterMetricsSource({ targets: [{ url: a.url, node: 'gpu-node-1' }, { url: b.url, node: 'gpu-node-2' }], timeoutMs: 1000 }).fetch(NOW);
    expect(inventory.gpus.map((g) => g.uuid)).toEqual([h100('gpu-node-1', 1, 0).uuid]);
    expect(inventory.faults?.excludedGpus['conflicting-series']).toBe(1);
    expect(inventory.faults?.excludedUuids).toEqual([shared.uuid]);
    expect(inventory.problems.join('\n')).toMatch(new RegExp(`excluded 1 GPU\\(s\\) whose series conflict \\(first: ${shared.uuid} on node "gpu-node-1" by .* and on node "gpu-node-2" by`));
  });

  test('an exporter that stamps its samples a year ahead: they count as taken when the answer arrived', async () => {
    const yearAheadMs = Date.now() + 365 * 86_400_000;
    const s = await serve((_req, res) => res.end(renderDcgmText([h100('gpu-node-1', 0, yearAheadMs), h100('gpu-node-1', 1, yearAheadMs)], { withTimestamps: true })));
    const nowMs = Date.now();
    const inventory = await new ExporterMetricsSource({ targets: [{ url: s.url }], timeoutMs: 1000 }).fetch(nowMs);
    for (const gpu of inventory.gpus) {
      expect(gpu.sampledAtMs).toBeGreaterThanOrEqual(nowMs);
      expect(gpu.sampledAtMs).toBeLessThan(nowMs + 5_000);
    }
    expect(inventory.faults?.clockSkewedGpus).toBe(2);
    expect(inventory.faults?.maxClockSkewSeconds).toBeGreaterThan(365 * 86_400 - 10);
    expect(inventory.problems.join('\n')).toMatch(/2 GPU\(s\) carry sample times up to \d+ s ahead of when their data arrived/);
  });

  test('a body past maxBodyBytes is cut off as it streams in; the exporter sees the connection close', async () => {
    const line = `${renderDcgmText([h100('gpu-node-1', 0, 0)]).split('\n')[0] ?? ''}\n`;
    const chunk = line.repeat(Math.ceil(65_536 / line.length));
    let written = 0;
    let closed = false;
    const endless = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.on('close', () => (closed = true));
      // At most 64 MiB, then the answer stays open: a cap that works never gets that far.
      const pump = (): void => {
        while (!closed && written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const inventory = await new ExporterMetricsSource({ targets: [{ url: endless.url }], timeoutMs: 5_000, maxBodyBytes: 1024 * 1024 }).fetch(NOW);
    expect(inventory.gpus).toEqual([]);
    expect(inventory.source).toBe('exporters:0/1');
    expect(inventory.problems.join('\n')).toMatch(/answered more than 1 MiB, above metrics.maxBodyBytes \(1 MiB\); the scrape was cut off/);
    const deadline = Date.now() + 5_000;
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(true);
    // What the exporter got out before the close: the cap plus what the sockets buffer, far from 64 MiB.
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });

  test('a declared Content-Length past maxBodyBytes is refused before reading', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(200 * 1024 * 1024) });
      res.write('DCGM');
    });
    const inventory = await new ExporterMetricsSource({ targets: [{ url: s.url }], timeoutMs: 2_000, maxBodyBytes: 1024 * 1024 }).fetch(NOW);
    expect(inventory.problems.join('\n')).toMatch(/answered 200 MiB, above metrics.maxBodyBytes \(1 MiB\)/);
  });

  test('a target that answers something else than an exporter is a problem', async () => {
    const s = await serve((_req, res) => res.end('<html>login</html>'));
    const inventory = await new ExporterMetricsSource({ targets: [{ url: s.url }], timeoutMs: 1000 }).fetch(NOW);
    expect(inventory.source).toBe('exporters:1/1');
    expect(inventory.gpus).toEqual([]);
    expect(inventory.skippedLines).toBe(1);
    expect(inventory.problems.join('\n')).toMatch(/no DCGM GPU series; check that the URL is a dcgm-exporter \/metrics endpoint/);
  });

  test('limits the scrapes in flight', async () => {
    const pending: Array<() => void> = [];
    let calls = 0;
    let most = 0;
    const fetchSpy = jest.spyOn(globalThis, 'fetch').mockImplementation(() => {
      calls++;
      return new Promise<Response>((resolve) => {
        pending.push(() => resolve(new Response(renderDcgmText([]))));
        most = Math.max(most, pending.length);
      });
    });
    try {
      const targets = Array.from({ length: 6 }, (_, i) => ({ url: `http://exporter-${i}.invalid/metrics` }));
      const fetching = new ExporterMetricsSource({ targets, timeoutMs: 2000, maxConcurrent: 2 }).fetch(NOW);
      // Scrapes start synchronously up to the limit; each answer lets the next one start.
      expect(calls).toBe(2);
      while (pending.length > 0) {
        pending.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
      const inventory = await fetching;
      expect(inventory.source).toBe('exporters:6/6');
      expect(calls).toBe(6);
      expect(most).toBe(2);
    } finally {
      fetchSpy.mockRestore();
    }
  });

  test('no targets is a problem that says where targets come from', async () => {
    const inventory = await new ExporterMetricsSource({ targets: [], timeoutMs: 100 }).fetch(NOW);
    expect(inventory.problems).toEqual(['no dcgm-exporter targets to scrape; list metrics.exporterUrls or check exporter discovery']);
  });

  test("the caller's abort rejects the fetch", async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    const s = await serve(() => arrived());
    const abort = new AbortController();
    const fetching = new ExporterMetricsSource({ targets: [{ url: s.url }], timeoutMs: 10_000 }).fetch(NOW, abort.signal);
    await requestArrived;
    abort.abort(new Error('stopping'));
    await expect(fetching).rejects.toThrow('stopping');
  });
});

describe('PrometheusMetricsSource', () => {
  const answer = (uuid: string, atSeconds: number): unknown => ({
    status: 'success',
    data: {
      resultType: 'matrix',
      result: ['DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_RESERVED'].map((name, i) => ({
        metric: { __name__: name, gpu: '0', UUID: uuid, modelName: 'NVIDIA H100 80GB HBM3', Hostname: 'exporter-pod', kubernetes_node: 'gpu-node-5' },
        values: [[atSeconds, ['80000', '1000', '559'][i]]],
      })),
    },
  });

  test('queries /api/v1/query under the base path and reads the series', async () => {
    const prom = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer('GPU-0000a000-0000-4000-8000-000000000000', 1_766_999_990)));
    });
    const source = new PrometheusMetricsSource({ baseUrl: `${prom.url}/prometheus`, timeoutMs: 1000, lookbackSeconds: 90 });
    const inventory = await source.fetch(NOW);
    expect(inventory.source).toBe(`prometheus:${prom.url}/prometheus`);
    expect(inventory.gpus.map((g) => [g.node, g.uuid, g.memory?.freeMiB, g.sampledAtMs])).toEqual([['gpu-node-5', 'GPU-0000a000-0000-4000-8000-000000000000', 80_000, 1_766_999_990_000]]);
    const asked = new URL(prom.requests[0] ?? '', prom.url);
    expect(asked.pathname).toBe('/prometheus/api/v1/query');
    expect(asked.searchParams.get('query')).toMatch(/^\{__name__=~".*DCGM_FI_DEV_FB_FREE.*"\}\[90s\]$/);
  });

  test('sample times ahead of the answer are clamped to its arrival, and counted', async () => {
    const nowMs = Date.now();
    const prom = await serve((_req, res) => res.end(JSON.stringify(answer('GPU-0000a000-0000-4000-8000-000000000000', nowMs / 1000 + 365 * 86_400))));
    const inventory = await new PrometheusMetricsSource({ baseUrl: prom.url, timeoutMs: 1000 }).fetch(nowMs);
    const sampledAtMs = inventory.gpus[0]?.sampledAtMs ?? NaN;
    expect(sampledAtMs).toBeGreaterThanOrEqual(nowMs);
    expect(sampledAtMs).toBeLessThan(nowMs + 5_000);
    expect(inventory.faults?.clockSkewedGpus).toBe(1);
  });

  test('an answer past maxBodyBytes fails the fetch, naming the setting', async () => {
    const prom = await serve((_req, res) => res.end(JSON.stringify(answer('GPU-0000a000-0000-4000-8000-000000000000', 1_766_999_990)).padEnd(8192, ' ')));
    await expect(new PrometheusMetricsSource({ baseUrl: prom.url, timeoutMs: 1000, maxBodyBytes: 4096 }).fetch(NOW)).rejects.toThrow(
      /answered 8 KiB, above metrics.prometheusMaxBodyBytes \(4 KiB\)/,
    );
  });

  test("Prometheus' error answer fails the fetch with its message", async () => {
    const prom = await serve((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'unavailable', error: 'TSDB not ready' }));
    });
    const fetching = new PrometheusMetricsSource({ baseUrl: prom.url, timeoutMs: 1000 }).fetch(NOW);
    await expect(fetching).rejects.toBeInstanceOf(MetricsSourceError);
    await expect(fetching).rejects.toThrow(/\(HTTP 503\): Prometheus refused the query: unavailable: TSDB not ready/);
  });

  test('a non-JSON answer (a wrong URL) fails the fetch and says so', async () => {
    const prom = await serve((_req, res) => res.writeHead(404).end('404 page not found'));
    await expect(new PrometheusMetricsSource({ baseUrl: prom.url, timeoutMs: 1000 }).fetch(NOW)).rejects.toThrow(
      /answered HTTP 404 with a body that is not JSON; check that metrics.prometheusUrl is the Prometheus base URL/,
    );
  });

  test('a Prometheus that does not answer in time fails the fetch', async () => {
    const prom = await serve(() => undefined);
    await expect(new PrometheusMetricsSource({ baseUrl: prom.url, timeoutMs: 200 }).fetch(NOW)).rejects.toThrow(/no answer within 200 ms; check that Prometheus is up/);
  });

  test('a base URL that is not a URL is refused up front', () => {
    expect(() => new PrometheusMetricsSource({ baseUrl: 'not a url', timeoutMs: 1000 })).toThrow(/is not a URL; set metrics.prometheusUrl/);
  });
});
