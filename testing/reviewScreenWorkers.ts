/**
 * Worker threads for ReviewScreenPool in tests, which run from the TypeScript sources: the real
 * worker loaded through tsx, and workers that crash, hang or throw on their first body.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ScreenWorkerData } from '../webhook/reviewScreenPool.js';

/** tsx's ESM API (its `import` export; require.resolve would give the CommonJS one). */
const tsxApi = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
const workerEntry = new URL('../webhook/reviewScreenWorker.ts', import.meta.url).href;

/** The worker of webhook/reviewScreenWorker.ts, compiled on the fly by tsx inside the worker; `after` runs once it has loaded. */
function realWorker(workerData: ScreenWorkerData, after = ''): Worker {
  const code = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(workerEntry)}); }).then(() => { ${after} });`;
  return new Worker(code, { eval: true, workerData });
}

export function sourceScreenWorker(workerData: ScreenWorkerData): Worker {
  return realWorker(workerData);
}

/** The real worker, except that the thread exits instead of answering an injection. */
export function crashingOnInject(workerData: ScreenWorkerData): Worker {
  const exitBeforeInjecting = "const port = require('node:worker_threads').parentPort; const post = port.postMessage.bind(port); port.postMessage = (replies) => (replies.some((r) => 'injected' in r) ? process.exit(9) : post(replies));";
  return realWorker(workerData, exitBeforeInjecting);
}

/** How a broken worker fails on the first body it is sent. */
export const BrokenWorker = {
  /** The thread exits. */
  Crashes: "require('node:worker_threads').parentPort.on('message', () => process.exit(7));",
  /** An uncaught exception ends the thread. */
  Throws: "require('node:worker_threads').parentPort.on('message', () => { throw new Error('worker blew up'); });",
  /** Never answers. */
  Hangs: "require('node:worker_threads').parentPort.on('message', () => {});",
} as const;
export type BrokenWorker = (typeof BrokenWorker)[keyof typeof BrokenWorker];

export function brokenScreenWorker(how: BrokenWorker): (workerData: ScreenWorkerData) => Worker {
  return (workerData) => new Worker(how, { eval: true, workerData });
}

/** The first `broken` workers fail as `how`; those started after them are the real one. */
export function failingFirst(how: BrokenWorker, broken = 1): (workerData: ScreenWorkerData) => Worker {
  let started = 0;
  return (workerData) => (started++ < broken ? brokenScreenWorker(how)(workerData) : sourceScreenWorker(workerData));
}

/** The real worker, its answers posted `ms` later (each kept in order): a worker still busy when the event loop hears from it. */
export function delayingReplies(ms: number): (workerData: ScreenWorkerData) => Worker {
  const delay = `const port = require('node:worker_threads').parentPort; const post = port.postMessage.bind(port); port.postMessage = (replies) => setTimeout(() => post(replies), ${ms});`;
  return (workerData) => realWorker(workerData, delay);
}
