import { buildConfig } from '../config/schema.js';
import { BrokenWorker, brokenScreenWorker, failingFirst, sourceScreenWorker } from '../testing/reviewScreenWorkers.js';
import { LARGE_BODY_BYTES, ReviewScreenPool } from './reviewScreenPool.js';

const config = buildConfig({});
const bytes = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));
const update = bytes({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'UPDATE', namespace: 'ns' } });

describe('ReviewScreenPool', () => {
  let pool: ReviewScreenPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('screens a body on a worker thread', async () => {
    pool = new ReviewScreenPool({ config, size: 1, queueLimit: 4, timeoutMs: 20_000, spawn: sourceScreenWorker });
    const result = await pool.screen(update);
    expect(result).toEqual({ ok: true, screening: { kind: 'answered', review: expect.objectContaining({ uid: 'u-1', operation: 'UPDATE' }), screened: null } });
    expect(pool.workers()).toBe(1);
  });

  it.each([
    ['exits', BrokenWorker.Crashes, /exited \(code 7\)/],
    ['throws', BrokenWorker.Throws, /exited \(worker blew up\)/],
  ])('gives the reason when a worker %s, and replaces it for the next body', async (_name, how, reason) => {
    pool = new ReviewScreenPool({ config, size: 1, queueLimit: 4, timeoutMs: 20_000, spawn: failingFirst(how) });
    const first = await pool.screen(update);
    expect(first.ok).toBe(false);
    expect(!first.ok && first.reason).toMatch(reason);
    const second = await pool.screen(update);
    expect(second.ok && second.screening.kind).toBe('answered');
  });

  it('ends a worker that does not answer within the deadline, and the bodies queued behind it move on', async () => {
    pool = new ReviewScreenPool({ config, size: 1, queueLimit: 4, timeoutMs: 300, spawn: brokenScreenWorker(BrokenWorker.Hangs) });
    const started = Date.now();
    const results = await Promise.all([pool.screen(update), pool.screen(update)]);
    for (const r of results) expect(!r.ok && r.reason).toMatch(/no worker thread answered within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('does not queue beyond its limit', async () => {
    pool = new ReviewScreenPool({ config, size: 1, queueLimit: 1, timeoutMs: 2_000, spawn: brokenScreenWorker(BrokenWorker.Hangs) });
    const running = pool.screen(update);
    const queued = pool.screen(update);
    const refused = await pool.screen(update);
    expect(!refused.ok && refused.reason).toMatch(/1 AdmissionReviews already wait for a worker thread/);
    await pool.close();
    for (const r of await Promise.all([running, queued])) expect(r.ok).toBe(false);
  });

  it('never queues a small body behind a large one: it is handed back, not failed', async () => {
    pool = new ReviewScreenPool({ config, size: 1, queueLimit: 4, timeoutMs: 2_000, spawn: brokenScreenWorker(BrokenWorker.Hangs) });
    const large = pool.screen(new Uint8Array(LARGE_BODY_BYTES));
    expect(await pool.screen(update)).toEqual({ ok: false, busy: true, reason: 'every worker thread is on a large body' });
    // Another large body waits its turn.
    const second = pool.screen(new Uint8Array(LARGE_BODY_BYTES));
    await pool.close();
    for (const r of await Promise.all([large, second])) expect(!r.ok && r.reason).toMatch(/shut down/);
  });

  it('close ends every worker and answers what was waiting', async () => {
    pool = new ReviewScreenPool({ config, size: 2, queueLimit: 4, timeoutMs: 20_000, spawn: brokenScreenWorker(BrokenWorker.Hangs) });
    const pending = [pool.screen(update), pool.screen(update), pool.screen(update)];
    expect(pool.workers()).toBe(2);
    await pool.close();
    expect(pool.workers()).toBe(0);
    for (const r of await Promise.all(pending)) expect(!r.ok && r.reason).toMatch(/shut down|exited/);
    expect(await pool.screen(update)).toEqual({ ok: false, reason: 'the worker pool is shut down' });
  });
});
