/**
 * Starts the built webhook (`node dist/cli/main.js serve`) as a real child process with
 * certificates from `mps-injector certs generate`, and talks to it over verified TLS.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const run = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const cliPath = path.join(repoRoot, 'dist/cli/main.js');

export interface GeneratedCerts {
  dir: string;
  caPem: string;
  certFile: string;
  keyFile: string;
}

export async function generateCerts(service = 'mps-injector', namespace = 'mps-system'): Promise<GeneratedCerts> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-certs-'));
  await run(process.execPath, [cliPath, 'certs', 'generate', '--service', service, '--namespace', namespace, '--san', '127.0.0.1', '--san', 'localhost', '--out', dir]);
  return { dir, caPem: await readFile(path.join(dir, 'ca.crt'), 'utf8'), certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') };
}

export interface WebhookProcess {
  child: ChildProcess;
  port: number;
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/**
 * Spawn the built CLI with `args` and resolve once its JSON log says it listens. Every log line
 * is kept in `logs`; an exit before listening rejects with what the process printed.
 */
export async function spawnWebhook(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<WebhookProcess> {
  const child = spawn(process.execPath, [cliPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (typeof entry.port === 'number' && String(entry.msg).includes('listening')) resolve(entry.port);
        } catch {
          // not a log line
        }
      }
    });
    void exited.then((code) => reject(new Error(`the webhook exited with ${code} before listening: ${err}`)));
  });
  return {
    child,
    port,
    logs,
    stderr: () => err,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Start `serve` with the given config (TLS paths filled in); resolves once it listens. Unless the
 * config sets server.drainDelaySeconds, SIGTERM drains without the delay window, so tests stop at once.
 */
export async function startWebhookProcess(config: Record<string, unknown>, certs: GeneratedCerts): Promise<WebhookProcess> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-config-'));
  const server = { host: '127.0.0.1', port: 0, logLevel: 'info', drainDelaySeconds: 0, ...(config.server as object), tlsCertFile: certs.certFile, tlsKeyFile: certs.keyFile };
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify({ ...config, server }));
  return spawnWebhook(['serve', '--config', configFile]);
}

export interface HttpsReply {
  status: number;
  body: string;
  json: () => unknown;
}

/** An HTTPS request that verifies the server against the given CA (no insecure shortcuts). */
export function httpsRequest(
  port: number,
  caPem: string,
  opts: { method?: string; path: string; body?: string | Buffer; contentType?: string; servername?: string; timeoutMs?: number },
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        ca: caPem,
        servername: opts.servername ?? 'localhost',
        agent: false,
        timeout: opts.timeoutMs ?? 10_000,
        headers: opts.body !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(opts.body) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) as unknown });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${opts.path} timed out`)));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Wait until /readyz answers 200, checking each time the previous check has answered. */
export async function waitUntilReady(port: number, caPem: string, timeoutMs = 15_000, servername = 'localhost'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await httpsRequest(port, caPem, { path: '/readyz', servername });
    if (r.status === 200) return;
    last = r.body;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`webhook not ready after ${timeoutMs} ms: ${last}`);
}
