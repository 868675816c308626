/**
 * Entry of the worker threads that screen large AdmissionReview bodies (reviewScreenPool.ts):
 * each message is one body, shared with the event loop (never copied), answered with its
 * screening. An exception screening a body is answered as such; the event loop then decides.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import type { ScreenReply, ScreenTask } from './reviewScreenPool.js';
import { screenReview } from './screenReview.js';

const { config } = workerData as { config: Config };
const port = parentPort;
if (port === null) throw new Error('reviewScreenWorker runs as a worker thread (webhook/reviewScreenPool.ts starts it)');

port.on('message', ({ id, body }: ScreenTask) => {
  let reply: ScreenReply;
  try {
    reply = { id, screening: screenReview(new Uint8Array(body), config) };
  } catch (err) {
    reply = { id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
