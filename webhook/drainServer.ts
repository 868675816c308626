/**
 * Draining an HTTP(S) server without dropping a request: for a window after shutdown begins the
 * server keeps accepting (while the Service's endpoints are updated and clients move away) and
 * answers every request with `Connection: close`, so kept-alive clients reconnect elsewhere; then
 * it stops accepting, lets the requests it has (uploads still arriving included) finish within a
 * grace period, and closes what is left.
 */
import { EventEmitter } from 'node:events';
import type { Server, ServerResponse } from 'node:http';

export interface DrainOptions {
  /** How long to keep accepting, answering with `Connection: close`, before the listener closes. */
  delayMs: number;
  /** How long requests already received get to finish once the listener has closed. */
  graceMs: number;
}

export interface DrainResult {
  /** Requests still unanswered when the grace period ran out (their connections were closed). */
  unfinished: number;
}

export interface ServerDrain {
  /** HTTP requests being received or answered now. */
  inFlight(): number;
  /** True once drain() has been called. */
  draining(): boolean;
  drain(opts: DrainOptions): Promise<DrainResult>;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Track `server`'s requests from the moment their headers arrive; call before the server listens. */
export function trackForDrain(server: Server): ServerDrain {
  const active = new Set<ServerResponse>();
  const idle = new EventEmitter();
  let draining = false;

  // First among the request listeners, so the header is set before the application answers.
  server.prependListener('request', (_req, res: ServerResponse) => {
    active.add(res);
    if (draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      active.delete(res);
      if (active.size === 0) idle.emit('idle');
    });
  });

  const whenIdle = (): Promise<void> => (active.size === 0 ? Promise.resolve() : new Promise((resolve) => idle.once('idle', () => resolve())));

  const drain = async ({ delayMs, graceMs }: DrainOptions): Promise<DrainResult> => {
    draining = true;
    // Requests already received and not yet answered close their connection too.
    for (const res of active) if (!res.headersSent) res.setHeader('Connection', 'close');
    if (delayMs > 0) await pause(delayMs);

    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([whenIdle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    const unfinished = active.size;
    server.closeAllConnections();
    await closed;
    return { unfinished };
  };

  return { inFlight: () => active.size, draining: () => draining, drain };
}
