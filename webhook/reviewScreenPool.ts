/**
 * A small pool of worker threads that parse and screen large AdmissionReview bodies
 * (screenReview.ts), so a body of megabytes never holds the event loop for the time JSON.parse
 * takes. A body is shared with the worker (SharedArrayBuffer), not copied per message, and stays
 * readable here: when a worker fails, the caller screens the body on the event loop instead.
 *
 * Never rejects: a full queue, a worker that crashes or exits, a body not answered within the
 * deadline (its worker is ended and replaced) or a closed pool all resolve to a reason.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import { admissionDeadline } from './admissionDeadline.js';
import type { ReviewScreening } from './screenReview.js';

/** One body for a worker. */
export interface ScreenTask {
  id: number;
  body: SharedArrayBuffer;
}

/** A worker's answer: the screening, or why screening threw. */
export type ScreenReply = { id: number; screening: ReviewScreening } | { id: number; error: string };

export type PooledScreening = { ok: true; screening: ReviewScreening } | { ok: false; reason: string };

export interface ScreenWorkerData {
  config: Config;
}

export interface ReviewScreenPoolOptions {
  config: Config;
  /** Worker threads at most; started when first needed. */
  size: number;
  /** Bodies that may wait for a worker; beyond it, a body is not queued (the caller screens it on the event loop). */
  queueLimit: number;
  /** How long one body may take, waiting included; a worker still on it then is ended and replaced. */
  timeoutMs: number;
  /** Starts one worker. Default: reviewScreenWorker.js beside this module. */
  spawn?: (workerData: ScreenWorkerData) => Worker;
}

interface Pending {
  id: number;
  body: SharedArrayBuffer;
  settle: (result: PooledScreening) => void;
}

interface Slot {
  worker: Worker;
  task: Pending | null;
  /** Why the worker failed, from its 'error' event, for the reason given when it exits. */
  failure: string | null;
}

const spawnBuilt = (workerData: ScreenWorkerData): Worker => new Worker(new URL('./reviewScreenWorker.js', import.meta.url), { workerData });

export class ReviewScreenPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  /** Workers ended for missing their deadline, until they have exited. */
  private readonly ending = new Set<Promise<number>>();
  private nextId = 1;
  private closed = false;
  private readonly spawn: (workerData: ScreenWorkerData) => Worker;

  constructor(private readonly opts: ReviewScreenPoolOptions) {
    this.spawn = opts.spawn ?? spawnBuilt;
  }

  /** Screen `body` on a worker thread. The bytes are copied once into memory shared with the worker. */
  screen(body: Uint8Array): Promise<PooledScreening> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'the worker pool is shut down' });
    if (this.queue.length >= this.opts.queueLimit) {
      return Promise.resolve({ ok: false, reason: `${this.queue.length} large bodies already wait for a worker thread (the queue's limit)` });
    }
    const shared = new SharedArrayBuffer(body.byteLength);
    new Uint8Array(shared).set(body);
    return new Promise((resolve) => {
      const deadline = admissionDeadline(this.opts.timeoutMs);
      let settled = false;
      const task: Pending = {
        id: this.nextId++,
        body: shared,
        settle: (result) => {
          if (settled) return;
          settled = true;
          deadline.clear();
          resolve(result);
        },
      };
      deadline.signal.addEventListener('abort', () => this.expire(task), { once: true });
      this.queue.push(task);
      this.dispatch();
    });
  }

  /** End every worker; bodies waiting or being screened resolve with a reason. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) task.settle({ ok: false, reason: 'the worker pool is shut down' });
    await Promise.all([...this.slots.map((slot) => slot.worker.terminate()), ...this.ending]);
  }

  /** Worker threads running now. */
  workers(): number {
    return this.slots.length;
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => s.task === null);
      if (slot === undefined) {
        if (this.slots.length >= this.opts.size) return;
        slot = this.start();
      }
      const task = this.queue.shift()!;
      slot.task = task;
      slot.worker.postMessage({ id: task.id, body: task.body } satisfies ScreenTask);
    }
  }

  private start(): Slot {
    const worker = this.spawn({ config: this.opts.config });
    // The server's sockets keep the process alive; an idle worker must not.
    worker.unref();
    const slot: Slot = { worker, task: null, failure: null };
    this.slots.push(slot);
    worker.on('message', (reply: ScreenReply) => {
      const task = slot.task;
      if (task === null || task.id !== reply.id) return;
      slot.task = null;
      task.settle('screening' in reply ? { ok: true, screening: reply.screening } : { ok: false, reason: `the worker thread failed: ${reply.error}` });
      this.dispatch();
    });
    worker.on('error', (err: Error) => {
      slot.failure = err.message;
    });
    worker.on('messageerror', (err: Error) => {
      slot.failure = `its answer could not be read: ${err.message}`;
      void worker.terminate();
    });
    worker.on('exit', (code) => {
      this.retire(slot);
      slot.task?.settle({ ok: false, reason: `the worker thread exited (${slot.failure ?? `code ${code}`})` });
      slot.task = null;
      this.dispatch();
    });
    return slot;
  }

  /** A body past its deadline: dropped from the queue, or its worker ended (a worker that never answers is stuck). */
  private expire(task: Pending): void {
    const reason = `no worker thread answered within ${this.opts.timeoutMs} ms`;
    const queued = this.queue.indexOf(task);
    if (queued !== -1) this.queue.splice(queued, 1);
    const slot = this.slots.find((s) => s.task === task);
    if (slot !== undefined) {
      this.retire(slot);
      slot.task = null;
      const ended = slot.worker.terminate();
      this.ending.add(ended);
      void ended.finally(() => this.ending.delete(ended));
    }
    task.settle({ ok: false, reason });
    this.dispatch();
  }

  private retire(slot: Slot): void {
    const index = this.slots.indexOf(slot);
    if (index !== -1) this.slots.splice(index, 1);
  }
}
