/**
 * The HTTPS listener: TLS 1.2 minimum, key pair hot-reloaded from files, graceful drain.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ReloadingKeyPair } from '../certs/reloadingKeyPair.js';
import type { WebhookApp } from './createApp.js';
import { expressMessageClasses } from './expressMessageClasses.js';

export interface RunningServer {
  server: https.Server;
  port: number;
  /** The serving certificate in use now (PEM). */
  servedCertificatePem(): string | null;
  /** Stop accepting, let in-flight admissions finish (up to graceMs), then close. */
  drain(graceMs: number): Promise<void>;
}

export async function startHttpsServer(
  webhook: WebhookApp,
  opts: { host: string; port: number; certFile: string; keyFile: string; logger: Logger },
): Promise<RunningServer> {
  const keyPair = new ReloadingKeyPair({ certFile: opts.certFile, keyFile: opts.keyFile });
  const pem = await keyPair.load();
  const server = https.createServer(
    {
      // Requests and responses born with express's prototypes: see expressMessageClasses.
      ...expressMessageClasses(webhook.app),
      cert: pem.certPem,
      key: pem.keyPem,
      minVersion: 'TLSv1.2',
      requestTimeout: 30_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 65_000,
    },
    webhook.app,
  );
  keyPair.on('reload', (info: unknown) => opts.logger.info({ info, certFile: opts.certFile }, 'serving certificate reloaded'));
  keyPair.on('error', (err: Error) => opts.logger.error({ err: err.message, certFile: opts.certFile }, 'serving certificate not reloaded; still serving the previous one'));
  keyPair.attach(server);
  server.on('tlsClientError', (err) => opts.logger.debug({ err: err.message }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const drain = async (graceMs: number): Promise<void> => {
    keyPair.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([webhook.whenIdle(), graceOver]);
    clearTimeout(timer);
    if (webhook.inFlight() > 0) opts.logger.warn({ inFlight: webhook.inFlight(), graceMs }, 'shutdown grace period over; closing connections with admissions still in flight');
    server.closeAllConnections();
    await closed;
  };
  return { server, port, drain, servedCertificatePem: () => keyPair.servedCertificatePem() };
}
