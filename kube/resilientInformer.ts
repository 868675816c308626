/**
 * A list+watch informer that keeps going: the client's ListWatch lists, watches from the
 * list's resourceVersion, resumes after a stream the server closed, and relists on 410 Gone;
 * this wrapper restarts it (with capped backoff) after the failures the client gives up on
 * (refused connections, reset streams, 5xx on list), and reports whether it is synced.
 */
import { makeInformer } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface InformerHandlers<T> {
  /** A new object, or one seen again after a relist. */
  onUpsert(obj: T): void;
  onDelete(obj: T): void;
}

export interface ResilientInformerOptions<T extends KubernetesObject> {
  /** For logs: "pods", "nodes", "dcgm-exporter pods". */
  name: string;
  kubeConfig: KubeConfig;
  /** Collection path the watch uses, e.g. "/api/v1/pods". */
  path: string;
  /** The list call; must apply the same selector as `labelSelector`. */
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  handlers: InformerHandlers<T>;
  logger: Logger;
  /** First restart delay; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer;
  private readonly options: ResilientInformerOptions<T>;
  private stopped = false;
  private everSynced = false;
  private listSucceeded = false;
  private failuresInARow = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private disconnectedSinceMs: number | null = null;
  private resolveSynced!: () => void;
  /** Resolves once the first list has been applied. */
  readonly synced: Promise<void>;
  /** Last failure, for health reporting. */
  lastError: string | null = null;

  constructor(options: ResilientInformerOptions<T>) {
    this.options = options;
    this.synced = new Promise((resolve) => {
      this.resolveSynced = resolve;
    });
    const list = async (): Promise<KubernetesListObject<T>> => {
      const result = await options.list();
      this.listSucceeded = true;
      return result;
    };
    this.informer = makeInformer<T>(options.kubeConfig, options.path, list, options.labelSelector);
    // A handler that throws must not stop the informer (the client would swallow it, or abort the list).
    const guarded = (handler: (obj: T) => void) => (obj: T) => {
      try {
        handler(obj);
      } catch (err) {
        const meta = (obj as KubernetesObject).metadata;
        options.logger.error(
          { informer: options.name, object: `${meta?.namespace ?? ''}/${meta?.name ?? ''}`, err: (err as Error).message },
          'could not apply a change from the Kubernetes API; skipped it (it is applied when the object next changes)',
        );
      }
    };
    this.informer.on('add', guarded(options.handlers.onUpsert));
    this.informer.on('update', guarded(options.handlers.onUpsert));
    this.informer.on('delete', guarded(options.handlers.onDelete));
    this.informer.on('error', (err) => this.onFailure(err));
  }

  /** Start listing and watching; resolves when the first attempt has run (see `synced` for the first successful list). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.runOnce();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  /** True once synced and not cut off from the API server for longer than `graceMs`. */
  isHealthy(nowMs: number, graceMs: number): boolean {
    if (!this.everSynced) return false;
    return this.disconnectedSinceMs === null || nowMs - this.disconnectedSinceMs < graceMs;
  }

  /** Objects currently known. */
  list(): readonly T[] {
    return this.informer.list();
  }

  private async runOnce(): Promise<void> {
    this.listSucceeded = false;
    const failuresBefore = this.failuresInARow;
    await this.informer.start();
    if (this.stopped) return;
    if (this.listSucceeded && !this.everSynced) {
      this.everSynced = true;
      this.resolveSynced();
    }
    // start() returns once the watch is open, or after an error was reported.
    if (this.failuresInARow === failuresBefore) {
      if (this.disconnectedSinceMs !== null) this.options.logger.info({ informer: this.options.name }, 'watch of the Kubernetes API resumed');
      this.failuresInARow = 0;
      this.disconnectedSinceMs = null;
      this.lastError = null;
    }
  }

  private onFailure(err: unknown): void {
    if (this.stopped) return;
    this.failuresInARow++;
    this.disconnectedSinceMs ??= Date.now();
    const message = err instanceof Error ? err.message : String(err);
    this.lastError = message;
    const initial = this.options.initialBackoffMs ?? 200;
    const delay = Math.min(this.options.maxBackoffMs ?? 10_000, initial * 2 ** Math.min(this.failuresInARow - 1, 16));
    const log = this.failuresInARow === 1 ? this.options.logger.warn.bind(this.options.logger) : this.options.logger.debug.bind(this.options.logger);
    log(
      { informer: this.options.name, err: message.split('\n')[0], retryInMs: delay, failuresInARow: this.failuresInARow },
      `lost the ${this.options.name} watch of the Kubernetes API; retrying (check that the API server is reachable and that the service account may list and watch ${this.options.name})`,
    );
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) void this.runOnce();
    }, delay);
  }
}
