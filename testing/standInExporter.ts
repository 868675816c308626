/**
 * The one stand-in dcgm-exporter: serves /metrics on 127.0.0.1 either from GPU samples
 * (rendered on every scrape with the scrape's time, as a live exporter stamps them) or from a
 * fixed text, and can be taken down (503) or slowed past a scraper's timeout. Counts scrapes
 * and lets a test wait for the next one.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GpuSample } from '../domain/inventory.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';

export type ExporterMode = 'up' | 'down' | 'slow';

export interface StandInExporter {
  port: number;
  url: string;
  /** Scrapes answered so far. */
  scrapes: number;
  setGpus(gpus: GpuSample[]): void;
  setText(text: string): void;
  setMode(mode: ExporterMode): void;
  /** Resolves after the next scrape the exporter answers (or fails) in its current mode. */
  nextScrape(): Promise<ExporterMode>;
  close(): Promise<void>;
  /** Same as close(). */
  stop(): Promise<void>;
}

/** Serve `initial`: GPU samples (fresh timestamps per scrape) or a fixed /metrics text. */
export async function startStandInExporter(initial: GpuSample[] | string, opts: { path?: string; slowMs?: number } = {}): Promise<StandInExporter> {
  const path = opts.path ?? '/metrics';
  const slowMs = opts.slowMs ?? 5000;
  let source: GpuSample[] | string = initial;
  let mode: ExporterMode = 'up';
  let waiters: ((m: ExporterMode) => void)[] = [];
  const pending = new Set<NodeJS.Timeout>();
  const notify = (m: ExporterMode): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f(m);
  };
  const exporter = { scrapes: 0 } as StandInExporter;
  const server = http.createServer((req, res) => {
    if (req.url !== path) {
      res.writeHead(404).end();
      return;
    }
    const current = mode;
    if (current === 'down') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('exporter unavailable\n');
      notify(current);
      return;
    }
    exporter.scrapes++;
    const body = typeof source === 'string' ? source : renderDcgmText(source.map((g) => ({ ...g, sampledAtMs: Date.now() })));
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
  const close = async (): Promise<void> => {
    for (const t of pending) clearTimeout(t);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return Object.assign(exporter, {
    port,
    url: `http://127.0.0.1:${port}${path}`,
    setGpus: (gpus: GpuSample[]) => {
      source = gpus;
    },
    setText: (text: string) => {
      source = text;
    },
    setMode: (m: ExporterMode) => {
      mode = m;
    },
    nextScrape: () => new Promise<ExporterMode>((resolve) => waiters.push(resolve)),
    close,
    stop: close,
  });
}
