/**
 * A stand-in dcgm-exporter for whole-system tests: serves /metrics from GPU samples that
 * a test can change, take down (503), or slow past the scraper's timeout.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GpuSample } from '../../dcgm/inventory.js';
import { renderDcgmText } from '../../dcgm/renderDcgmText.js';

export type ExporterMode = 'up' | 'down' | 'slow';

export interface StandInExporter {
  url: string;
  setGpus(gpus: GpuSample[]): void;
  setMode(mode: ExporterMode): void;
  /** Resolves after the next scrape the exporter answers (or fails) in its current mode. */
  nextScrape(): Promise<ExporterMode>;
  close(): Promise<void>;
}

export async function startStandInExporter(initial: GpuSample[], slowMs = 5000): Promise<StandInExporter> {
  let gpus = initial;
  let mode: ExporterMode = 'up';
  let waiters: ((m: ExporterMode) => void)[] = [];
  const pending = new Set<NodeJS.Timeout>();
  const notify = (m: ExporterMode): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f(m);
  };
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const current = mode;
    if (current === 'down') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('exporter unavailable\n');
      notify(current);
      return;
    }
    const body = renderDcgmText(gpus.map((g) => ({ ...g, sampledAtMs: Date.now() })));
    if (current === 'slow') {
      notify(current);
      const t = setTimeout(() => {
        pending.delete(t);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
      }, slowMs);
      pending.add(t);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
    notify(current);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    setGpus: (g) => {
      gpus = g;
    },
    setMode: (m) => {
      mode = m;
    },
    nextScrape: () => new Promise((resolve) => waiters.push(resolve)),
    close: async () => {
      for (const t of pending) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
