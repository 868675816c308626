/**
 * A small pool of worker threads that take AdmissionReview bodies off the event loop: each is
 * parsed and screened there (screenReview.ts), so a body of megabytes never holds the event loop
 * for the time JSON.parse takes, and a pod that needs a placement is injected and diffed there
 * once the event loop has placed it (ADR 0015, ADR 0010). A body is shared with the worker
 * as a copy (handed over, not copied again per message), and stays readable here: when a worker
 * fails, the caller answers the body on the event loop instead.
 *
 * A worker takes several tasks at once and answers them in order. A pod screened for placement
 * stays on the worker that screened it (`HeldPod`) until `inject` or `forget`.
 *
 * Never rejects: a full queue, a worker that crashes or exits, a task not answered within the
 * deadline (its worker is ended and replaced, and every task it held fails) or a closed pool all
 * resolve to a reason.
 */
import { Worker } from 'node:worker_threads';
import type { PlacementToInject } from '../admission/admitPod.js';
import type { Config } from '../config/schema.js';
import type { EncodedPatch } from './admissionReview.js';
import type { ReviewScreening } from './screenReview.js';

/** One task for a worker. A message carries the tasks of one turn of the event loop, in order. */
export type PoolTask = { kind: 'screen'; id: number; body: ArrayBuffer } | { kind: 'inject'; id: number; placed: PlacementToInject } | { kind: 'forget'; id: number };

/** A held pod injected: its patch encoded for the answer and its warnings, or why the API server would refuse it. */
export type InjectedAnswer = { ok: true; patch: EncodedPatch; warnings: string[] } | { ok: false; message: string };

/** A worker's answer to one task: the screening, the injection, or why the task threw. A message carries the answers to one message's tasks. */
export type ScreenReply = { id: number; screening: ReviewScreening } | { id: number; injected: InjectedAnswer } | { id: number; error: string };

/** Where a pod screened for placement is held: pass it to inject or forget. */
export interface HeldPodHandle {
  readonly slot: object;
  readonly id: number;
}

/**
 * `busy`: a small body found every worker on a large one; the caller answers it on the event loop
 * (a fraction of a millisecond) rather than queue it behind one (tens). Not a failure.
 */
export type PooledScreening = { ok: true; screening: ReviewScreening; held?: HeldPodHandle } | { ok: false; reason: string; busy?: true };
export type PooledInjection = { ok: true; injected: InjectedAnswer } | { ok: false; reason: string };

export interface ScreenWorkerData {
  config: Config;
}

export interface ReviewScreenPoolOptions {
  config: Config;
  /** Worker threads at most; started when first needed. */
  size: number;
  /** Tasks that may wait behind another on a busy worker; beyond it, a body is not queued (the caller answers it on the event loop). */
  queueLimit: number;
  /** How long one task may take, waiting included; a worker still on it then is ended and replaced. */
  timeoutMs: number;
  /** Starts one worker. Default: reviewScreenWorker.js beside this module. */
  spawn?: (workerData: ScreenWorkerData) => Worker;
}

interface Pending {
  startedMs: number;
  settle: (reply: ScreenReply | { failed: string }) => void;
}

interface Slot {
  worker: Worker;
  /** Tasks sent and not yet answered, oldest first (a worker answers in order). */
  pending: Map<number, Pending>;
  /** Why the worker failed, from its 'error' event, for the reason given when it exits. */
  failure: string | null;
  /** Ended: its held pods are gone. */
  retired: boolean;
  /** Pending bodies of LARGE_BODY_BYTES or more. */
  largePending: number;
  /** Tasks of this turn of the event loop, sent together at its end (one wake-up of the worker, not one per task). */
  outbox: PoolTask[];
  transfer: ArrayBuffer[];
}

/** A body this large takes a worker for milliseconds (3 MiB: about 60): small bodies are not queued behind it. */
export const LARGE_BODY_BYTES = 256 * 1024;

/** The pool the webhook runs with `config`: server.offloadWorkers threads, 64 tasks waiting per thread, half the admission deadline per task. */
export function reviewScreenPoolFor(config: Config): ReviewScreenPool {
  const size = config.server.offloadWorkers;
  return new ReviewScreenPool({ config, size, queueLimit: 64 * size, timeoutMs: Math.ceil(config.server.admissionTimeoutMs / 2) });
}

const spawnBuilt = (workerData: ScreenWorkerData): Worker => new Worker(new URL('./reviewScreenWorker.js', import.meta.url), { workerData });

export class ReviewScreenPool {
  private readonly slots: Slot[] = [];
  /** Workers ended for missing their deadline, until they have exited. */
  private readonly ending = new Set<Promise<number>>();
  private nextId = 1;
  private closed = false;
  private readonly sent = { screen: 0, inject: 0 };
  private flushing: NodeJS.Immediate | null = null;
  private readonly spawn: (workerData: ScreenWorkerData) => Worker;
  /** One timer checks every worker's oldest task, instead of a timer per task. */
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly opts: ReviewScreenPoolOptions) {
    this.spawn = opts.spawn ?? spawnBuilt;
    this.watchdog = setInterval(() => this.expireLate(), Math.max(10, Math.floor(opts.timeoutMs / 8)));
    this.watchdog.unref();
  }

  /** Start the workers now rather than on the first body, so the first admissions do not wait for them. */
  prestart(): void {
    while (!this.closed && this.slots.length < this.opts.size) this.start();
  }

  /** Screen `body` on a worker thread. The bytes are copied once, and the copy handed to the worker. */
  screen(body: Uint8Array): Promise<PooledScreening> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'the worker pool is shut down' });
    const large = body.byteLength >= LARGE_BODY_BYTES;
    const slot = this.pick(large);
    if (slot === 'busy') return Promise.resolve({ ok: false, busy: true, reason: 'every worker thread is on a large body' });
    if (slot === null) {
      const waiting = this.waiting();
      return Promise.resolve({ ok: false, reason: `${waiting} AdmissionReviews already wait for a worker thread (the queue's limit)` });
    }
    // A copy, handed over to the worker: the body itself stays readable here.
    const copy = new ArrayBuffer(body.byteLength);
    new Uint8Array(copy).set(body);
    const id = this.nextId++;
    return this.send(slot, { kind: 'screen', id, body: copy }, copy, large).then((reply) => {
      if ('failed' in reply) return { ok: false, reason: reply.failed };
      if ('error' in reply) return { ok: false, reason: `the worker thread failed: ${reply.error}` };
      if (!('screening' in reply)) return { ok: false, reason: 'the worker thread answered a screening with something else' };
      return reply.screening.kind === 'place' ? { ok: true, screening: reply.screening, held: { slot, id } } : { ok: true, screening: reply.screening };
    });
  }

  /** Inject a held pod on the worker that holds it; the pod is no longer held afterwards. */
  inject(handle: HeldPodHandle, placed: PlacementToInject): Promise<PooledInjection> {
    const slot = handle.slot as Slot;
    if (this.closed || slot.retired) return Promise.resolve({ ok: false, reason: 'the worker thread that screened the pod has ended' });
    return this.send(slot, { kind: 'inject', id: handle.id, placed }, undefined, false).then((reply) => {
      if ('failed' in reply) return { ok: false, reason: reply.failed };
      if ('error' in reply) return { ok: false, reason: `the worker thread failed: ${reply.error}` };
      if (!('injected' in reply)) return { ok: false, reason: 'the worker thread answered an injection with something else' };
      return { ok: true, injected: reply.injected };
    });
  }

  /** Is the worker holding this pod on a large body? Its answer would wait for that body. */
  heldBehindLarge(handle: HeldPodHandle): boolean {
    return (handle.slot as Slot).largePending > 0;
  }

  /** The held pod is not needed (placement refused it, or it was injected elsewhere): drop it on its worker. */
  forget(handle: HeldPodHandle): void {
    const slot = handle.slot as Slot;
    if (!slot.retired) this.post(slot, { kind: 'forget', id: handle.id });
  }

  /** End every worker; tasks waiting or running resolve with a reason. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    const slots = [...this.slots];
    for (const slot of slots) this.fail(slot, 'the worker pool is shut down');
    await Promise.all([...slots.map((slot) => slot.worker.terminate()), ...this.ending]);
  }

  /** Tasks sent to workers so far, by kind. */
  tasks(): Readonly<Record<'screen' | 'inject', number>> {
    return { ...this.sent };
  }

  /** Worker threads running now. */
  workers(): number {
    return this.slots.length;
  }

  /** Tasks sent beyond the one each worker is on. */
  private waiting(): number {
    return this.slots.reduce((sum, s) => sum + Math.max(0, s.pending.size - 1), 0);
  }

  /**
   * An idle worker, a new one while under the size, else the least busy while the queue has room;
   * null when full. A small body never waits behind a large one: 'busy' when every worker has one.
   */
  private pick(large: boolean): Slot | null | 'busy' {
    let best: Slot | null = null;
    for (const slot of this.slots) {
      if (!large && slot.largePending > 0) continue;
      if (best === null || slot.pending.size < best.pending.size) best = slot;
    }
    if (best !== null && best.pending.size === 0) return best;
    if (this.slots.length < this.opts.size) return this.start();
    if (best === null) return 'busy';
    return this.waiting() >= this.opts.queueLimit ? null : best;
  }

  private send(slot: Slot, task: Exclude<PoolTask, { kind: 'forget' }>, transfer: ArrayBuffer | undefined, large: boolean): Promise<ScreenReply | { failed: string }> {
    return new Promise((resolve) => {
      if (large) slot.largePending += 1;
      const settle = (reply: ScreenReply | { failed: string }): void => {
        if (large) slot.largePending -= 1;
        resolve(reply);
      };
      slot.pending.set(task.id, { startedMs: Date.now(), settle });
      this.sent[task.kind] += 1;
      this.post(slot, task, transfer);
    });
  }

  /** Queue a task for the slot's next message; the messages go out once this turn of the event loop is over. */
  private post(slot: Slot, task: PoolTask, transfer?: ArrayBuffer): void {
    slot.outbox.push(task);
    if (transfer !== undefined) slot.transfer.push(transfer);
    this.flushing ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = null;
    for (const slot of this.slots) {
      if (slot.outbox.length === 0) continue;
      const tasks = slot.outbox;
      const transfer = slot.transfer;
      slot.outbox = [];
      slot.transfer = [];
      slot.worker.postMessage(tasks, transfer);
    }
  }

  private start(): Slot {
    const worker = this.spawn({ config: this.opts.config });
    // The server's sockets keep the process alive; an idle worker must not.
    worker.unref();
    const slot: Slot = { worker, pending: new Map(), failure: null, retired: false, largePending: 0, outbox: [], transfer: [] };
    this.slots.push(slot);
    worker.on('message', (replies: ScreenReply[]) => {
      for (const reply of replies) {
        const task = slot.pending.get(reply.id);
        if (task === undefined) continue;
        slot.pending.delete(reply.id);
        task.settle(reply);
      }
    });
    worker.on('error', (err: Error) => {
      slot.failure = err.message;
    });
    worker.on('messageerror', (err: Error) => {
      slot.failure = `its answer could not be read: ${err.message}`;
      void worker.terminate();
    });
    worker.on('exit', (code) => {
      this.fail(slot, `the worker thread exited (${slot.failure ?? `code ${code}`})`);
    });
    return slot;
  }

  /** A worker whose oldest task is past the deadline is stuck: it is ended, and every task it held fails. */
  private expireLate(): void {
    const now = Date.now();
    for (const slot of [...this.slots]) {
      const oldest = slot.pending.values().next();
      if (oldest.done === true || now - oldest.value.startedMs < this.opts.timeoutMs) continue;
      this.fail(slot, `no worker thread answered within ${this.opts.timeoutMs} ms`);
      const ended = slot.worker.terminate();
      this.ending.add(ended);
      void ended.finally(() => this.ending.delete(ended));
    }
  }

  /** Retire a worker and settle what it held with `reason`. */
  private fail(slot: Slot, reason: string): void {
    slot.retired = true;
    const index = this.slots.indexOf(slot);
    if (index !== -1) this.slots.splice(index, 1);
    const tasks = [...slot.pending.values()];
    slot.pending.clear();
    for (const task of tasks) task.settle({ failed: reason });
  }
}
