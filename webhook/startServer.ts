/**
 * The HTTPS listener: the TLS policy (TLS 1.3, TLS 1.2 with ECDHE+AEAD only by default), key pair
 * and client CA hot-reloaded from files, optional client-certificate authentication, graceful
 * drain (drainServer.ts).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ReloadingKeyPair } from '../certs/reloadingKeyPair.js';
import { DEFAULT_TLS_POLICY, tlsPolicyOptions, tlsPolicyProblem, type TlsPolicy } from '../certs/tlsPolicy.js';
import { ConfigError } from '../config/schema.js';
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

/**
 * Paths served to clients without a verified certificate when mutual TLS is on: the kubelet's
 * probes cannot present one, and metrics are read-only. Everything else, /mutate above all,
 * needs the certificate.
 */
export const PATHS_OPEN_WITHOUT_CLIENT_CERTIFICATE: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** At most one warning per this interval about refused clients; the rest are counted in it. */
const REFUSAL_WARNING_INTERVAL_MS = 60_000;

export async function startHttpsServer(
  webhook: WebhookApp,
  opts: {
    host: string;
    port: number;
    certFile: string;
    keyFile: string;
    logger: Logger;
    /** Protocol versions and cipher suites; default DEFAULT_TLS_POLICY. */
    tls?: TlsPolicy;
    /** PEM CA(s) that client certificates must chain to; '' or absent: no client authentication. */
    clientCaFile?: string;
  },
): Promise<RunningServer> {
  const policy = opts.tls ?? DEFAULT_TLS_POLICY;
  const problem = tlsPolicyProblem(policy);
  if (problem !== null) throw new ConfigError(problem);
  const clientCaFile = opts.clientCaFile ?? '';
  const mutualTls = clientCaFile !== '';
  const keyPair = new ReloadingKeyPair({
    certFile: opts.certFile,
    keyFile: opts.keyFile,
    ...(mutualTls ? { clientCaFile } : {}),
    contextOptions: tlsPolicyOptions(policy),
  });
  await keyPair.load();
  const server = https.createServer(
    {
      // Requests and responses born with express's prototypes: see expressMessageClasses.
      ...expressMessageClasses(webhook.app),
      ...keyPair.secureContextOptions(),
      // With mutual TLS the handshake asks for and verifies a client certificate, and completes
      // without one so the kubelet's probes still reach /healthz and /readyz; every other path
      // is refused per request below when the certificate is missing or not verified.
      requestCert: mutualTls,
      rejectUnauthorized: false,
      requestTimeout: 30_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 65_000,
    },
    mutualTls ? requireClientCertificate(webhook.app, clientCaFile, opts.logger) : webhook.app,
  );
  keyPair.on('reload', (info: unknown) => opts.logger.info({ info, certFile: opts.certFile }, 'serving certificate reloaded'));
  keyPair.on('clientCaReload', (info: unknown) => opts.logger.info({ info }, 'client CA reloaded'));
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

/**
 * Serve `listener` only to clients whose certificate the server verified against the client CA,
 * apart from PATHS_OPEN_WITHOUT_CLIENT_CERTIFICATE; others get 403 with the reason.
 */
export function requireClientCertificate(listener: RequestListener, clientCaFile: string, logger: Logger): RequestListener {
  let lastWarningAt = -Infinity;
  let suppressed = 0;
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const socket = req.socket as TLSSocket;
    if (socket.authorized || PATHS_OPEN_WITHOUT_CLIENT_CERTIFICATE.has(path)) {
      listener(req, res);
      return;
    }
    const presented = Object.keys(socket.getPeerCertificate?.() ?? {}).length > 0;
    const reason = presented
      ? `the client certificate was not verified against the CA in server.clientCAFile (${String(socket.authorizationError ?? 'unknown error')})`
      : 'no client certificate was presented';
    const now = Date.now();
    if (now - lastWarningAt >= REFUSAL_WARNING_INTERVAL_MS) {
      logger.warn({ remoteAddress: socket.remoteAddress, path, reason, clientCaFile, refusedSinceLastWarning: suppressed }, 'request refused: mutual TLS is on and the client is not authenticated');
      lastWarningAt = now;
      suppressed = 0;
    } else {
      suppressed += 1;
    }
    const body = JSON.stringify({
      error: `client certificate required: ${reason}. This webhook serves ${path} only to clients (the API server) holding a certificate signed by its client CA; see the README's mutual TLS section`,
    });
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  };
}
