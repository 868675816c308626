/**
 * Entry of the worker threads that take AdmissionReview bodies off the event loop
 * (reviewScreenPool.ts). Each message is a list of tasks, answered with one message of replies. A
 * `screen` task is one body, handed over by the event loop, answered with its screening. A pod that needs a placement is kept here under the task's id
 * until the event loop, having placed it, sends `inject` (answered with the encoded patch) or
 * `forget`. An exception is answered as such; the event loop then decides.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import type { PoolTask, ScreenReply } from './reviewScreenPool.js';
import type { HeldPod } from './screenReview.js';
import { injectHeld, screenReview } from './screenReview.js';

const { config } = workerData as { config: Config };
const port = parentPort;
if (port === null) throw new Error('reviewScreenWorker runs as a worker thread (webhook/reviewScreenPool.ts starts it)');

/** Pods screened for placement, until the event loop says what to do with them. */
const held = new Map<number, HeldPod>();

port.on('message', (tasks: PoolTask[]) => {
  const replies: ScreenReply[] = [];
  for (const task of tasks) {
    const reply = run(task);
    if (reply !== null) replies.push(reply);
  }
  if (replies.length > 0) port.postMessage(replies);
});

function run(task: PoolTask): ScreenReply | null {
  const { id } = task;
  if (task.kind === 'forget') {
    held.delete(id);
    return null;
  }
  try {
    if (task.kind === 'screen') {
      const screening = screenReview(new Uint8Array(task.body), config);
      if (screening.kind !== 'place') return { id, screening };
      const { held: pod, ...placement } = screening;
      held.set(id, pod!);
      return { id, screening: placement };
    }
    const pod = held.get(id);
    held.delete(id);
    if (pod === undefined) throw new Error(`no pod is held for task ${id}`);
    return { id, injected: injectHeld(pod, task.placed, config) };
  } catch (err) {
    return { id, error: err instanceof Error ? err.message : String(err) };
  }
}
