/**
 * Waits on the changes a running cluster integration reports (its onChange hook), so tests
 * wait for an event rather than for time to pass.
 */
import type { ClusterChange } from '../kube/startClusterIntegration.js';

export interface ClusterChangeWaiter {
  /** Pass as deps.onChange. */
  onChange: (change: ClusterChange) => void;
  /** Resolves on the next change that matches (register before causing it). */
  next<K extends ClusterChange['kind']>(kind: K, match?: (change: Extract<ClusterChange, { kind: K }>) => boolean, timeoutMs?: number): Promise<Extract<ClusterChange, { kind: K }>>;
  /** Every change seen so far. */
  seen: ClusterChange[];
}

export function clusterChangeWaiter(): ClusterChangeWaiter {
  const waiting = new Set<{ accepts: (c: ClusterChange) => boolean; resolve: (c: ClusterChange) => void }>();
  const seen: ClusterChange[] = [];
  return {
    seen,
    onChange(change) {
      seen.push(change);
      for (const w of [...waiting]) {
        if (!w.accepts(change)) continue;
        waiting.delete(w);
        w.resolve(change);
      }
    },
    next(kind, match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const entry = {
          accepts: (c: ClusterChange) => c.kind === kind && (match === undefined || match(c as never)),
          resolve: (c: ClusterChange) => {
            clearTimeout(timer);
            resolve(c as never);
          },
        };
        const timer = setTimeout(() => {
          waiting.delete(entry);
          reject(new Error(`no ${kind} change within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.add(entry);
      });
    },
  };
}
