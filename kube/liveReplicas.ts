/**
 * The replicas alive now, from their Leases: each replica renews its own Lease and lists the
 * others on a fixed period (a third of the Lease duration), and shares the GPUs with the live
 * ones (placement/replicaPreference.ts). The set only steers which GPUs a replica tries first;
 * every grant is still a compare-and-swap, so replicas that disagree about it (one joined,
 * left, or lost its Lease and the others have not listed since) race more but never grant
 * the same capacity twice. This replica is always in its own set.
 */
import type { Logger } from 'pino';
import { replicaPreference } from '../placement/replicaPreference.js';
import type { GpuPreference } from '../domain/slot.js';
import type { ReplicaLeases } from './replicaLeases.js';

export interface LiveReplicasOptions {
  leases: ReplicaLeases;
  /** This replica's name (its Lease's holder). */
  replica: string;
  /** Renew and list this often, ms. */
  renewEveryMs: number;
  logger: Logger;
  /** The GPUs other replicas are filling now, as far as this one can tell (the reservation store knows). */
  contendedGpus?: () => readonly string[];
  /** Told when the set changes. */
  onChange?: (replicas: readonly string[]) => void;
}

export class LiveReplicas {
  private readonly opts: LiveReplicasOptions;
  private current: readonly string[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private preferenceOf: readonly string[] | null = null;
  private currentPreference: GpuPreference | null = null;
  /** Passes that failed in a row (API server unreachable, no RBAC for Leases, ...). */
  failuresInARow = 0;
  lastError: string | null = null;

  constructor(opts: LiveReplicasOptions) {
    this.opts = opts;
    this.current = Object.freeze([opts.replica]);
  }

  /** The live replicas as last listed, sorted, this one included; the same array until the set changes. */
  replicas(): readonly string[] {
    return this.current;
  }

  /** This replica's preference among GPUs for the live replicas now (null while it is alone); the same function until they change. */
  preference(): GpuPreference | null {
    if (this.preferenceOf !== this.current) {
      this.preferenceOf = this.current;
      this.currentPreference = replicaPreference({
        self: this.opts.replica,
        replicas: this.current,
        ...(this.opts.contendedGpus ? { contendedGpus: this.opts.contendedGpus } : {}),
      });
    }
    return this.currentPreference;
  }

  /**
   * First pass (a failure is logged: until a pass succeeds this replica counts as the only
   * one), then one pass per period until stop(), or until `signal` aborts (the Lease is then
   * left to lapse, as a replica that died leaves it).
   */
  async start(signal?: AbortSignal): Promise<void> {
    await this.refresh(signal).catch(() => undefined);
    this.schedule(signal);
  }

  /** Renew this replica's Lease, then list the live replicas. Passes never overlap. */
  refresh(signal?: AbortSignal): Promise<void> {
    const pass = this.running.catch(() => undefined).then(() => this.refreshOnce(signal));
    this.running = pass;
    return pass;
  }

  /** Stop renewing and delete this replica's Lease: the others stop counting on it at their next pass. */
  async stop(signal?: AbortSignal): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
    await this.opts.leases.remove(signal);
  }

  private schedule(signal?: AbortSignal): void {
    if (this.stopped || signal?.aborted === true) return;
    this.timer = setTimeout(() => {
      this.refresh(signal)
        .catch(() => undefined)
        .finally(() => this.schedule(signal));
    }, this.opts.renewEveryMs);
    this.timer.unref();
  }

  private async refreshOnce(signal?: AbortSignal): Promise<void> {
    if (this.stopped || signal?.aborted === true) return;
    const { leases, replica, logger } = this.opts;
    try {
      await leases.renew(signal);
      const live = (await leases.list(signal)).filter((r) => r.live && r.replica !== '').map((r) => r.replica);
      this.failuresInARow = 0;
      this.lastError = null;
      this.update([...new Set([...live, replica])].sort());
    } catch (err) {
      this.failuresInARow++;
      this.lastError = (err as Error).message;
      logger.warn(
        { err: this.lastError, failuresInARow: this.failuresInARow, replicas: this.current },
        'could not renew this replica’s Lease or list the others; sharing GPUs with the replicas last seen, retrying at the next period',
      );
      throw err;
    }
  }

  private update(next: string[]): void {
    const previous = this.current;
    if (next.length === previous.length && next.every((r, i) => r === previous[i])) return;
    this.current = Object.freeze(next);
    this.opts.logger.info({ replicas: next, previous }, 'live replicas changed: GPUs are shared anew between them');
    this.opts.onChange?.(this.current);
  }
}
