/**
 * A stand-in dcgm-exporter: serves a fixed /metrics text over HTTP on 127.0.0.1 and counts
 * the scrapes it answered.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInExporter {
  port: number;
  url: string;
  scrapes: number;
  setText(text: string): void;
  stop(): Promise<void>;
}

export async function startStandInExporter(text: string, path = '/metrics'): Promise<StandInExporter> {
  let body = text;
  const exporter = { scrapes: 0 } as StandInExporter;
  const server = http.createServer((req, res) => {
    if (req.url !== path) {
      res.writeHead(404).end();
      return;
    }
    exporter.scrapes++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(exporter, {
    port,
    url: `http://127.0.0.1:${port}${path}`,
    setText: (next: string) => {
      body = next;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
