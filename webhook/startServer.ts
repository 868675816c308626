/**
 * The HTTPS listener: TLS 1.2 minimum, key pair hot-reloaded from files, graceful drain (drainServer.ts).
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ReloadingKeyPair } from '../certs/reloadingKeyPair.js';
import type { WebhookApp } from './createApp.js';
import type { DrainOptions } from './drainServer.js';
import { trackForDrain } from './drainServer.js';
import { expressMessageClasses } from './expressMessageClasses.js';

export interface RunningServer {
  server: https.Server;
  port: number;
  /** The serving certificate in use now (PEM). */
  servedCertificatePem(): string | null;
  /** Keep accepting for opts.delayMs answering with Connection: close, then stop accepting, let requests finish (up to opts.graceMs), and close. */
  drain(opts: DrainOptions): Promise<void>;
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
  const tracked = trackForDrain(server);
  server.on('tlsClientError', (err) => opts.logger.debug({ err: err.message }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const drain = async (drainOpts: DrainOptions): Promise<void> => {
    const { unfinished } = await tracked.drain(drainOpts);
    keyPair.close();
    if (unfinished > 0) opts.logger.warn({ unfinished, graceMs: drainOpts.graceMs }, 'shutdown grace period over; closed connections with requests still unanswered');
  };
  return { server, port, drain, servedCertificatePem: () => keyPair.servedCertificatePem() };
}
