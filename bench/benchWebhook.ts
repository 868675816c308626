/**
 * The webhook as the bench runs it: `serve` from a config file, plus a stand-in for the pod
 * lifecycle a live cluster drives. Each admission's pod "appears" on the next lifecycle tick
 * and its reservation is confirmed (under the pod's real name, as the pod watch does for a
 * generateName pod); the oldest confirmed pods "end" and are released, so the ledger holds a
 * steady number of live reservations across the GPUs. That number is preloaded before the
 * server takes traffic.
 *
 * Usage: node .bench-dist/bench/benchWebhook.js <config.yaml> <liveReservations>
 * Logs "bench pod lifecycle running" with the port once the preload is done.
 */
import { readFile } from 'node:fs/promises';
import { parseConfigText } from '../config/schema.js';
import type { Reservation } from '../domain/slot.js';
import { serve } from '../webhook/serve.js';
import { syntheticGpus } from './syntheticCluster.js';

/** How often pods "appear" (pending reservations confirmed) and "end" (oldest released). */
const LIFECYCLE_TICK_MS = 20;

/** A FIFO of reservation ids with O(1) push and shift. */
class IdQueue {
  private items: string[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(id: string): void {
    this.items.push(id);
  }
  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const id = this.items[this.head++];
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return id;
  }
}

async function main(): Promise<void> {
  const [configFile, liveArg, nodesArg] = process.argv.slice(2);
  if (configFile === undefined) throw new Error('usage: benchWebhook <config.yaml> <liveReservations> <nodes>');
  const live = Number(liveArg ?? 0);
  const nodes = Number(nodesArg ?? 100);
  const config = parseConfigText(await readFile(configFile, 'utf8'), configFile);
  const handle = await serve(config, { handleSignals: true });
  const { ledger } = handle;

  // Every reservation the webhook makes from now on: the pods the API server is about to create.
  const appearing = new IdQueue();
  const confirmed = new IdQueue();
  const reserve = ledger.reserve.bind(ledger);
  ledger.reserve = (input, nowMs): Reservation => {
    const r = reserve(input, nowMs);
    appearing.push(r.id);
    return r;
  };

  // Preload: `live` running pods spread round-robin over the fleet.
  const gpus = syntheticGpus(nodes, 8, Date.now());
  const now = Date.now();
  for (let i = 0; i < live; i++) {
    const gpu = gpus[i % gpus.length]!;
    const r = reserve({ podKey: `bench/running-${i}`, node: gpu.node, gpuUuid: gpu.uuid, memoryMiB: 512, threadPercent: 1, priority: 'low' }, now);
    ledger.confirm(r.id, now);
    confirmed.push(r.id);
  }

  let created = 0;
  const tick = setInterval(() => {
    const t = Date.now();
    for (let id = appearing.shift(); id !== undefined; id = appearing.shift()) {
      created += 1;
      if (ledger.confirm(id, t, { podKey: `bench/pod-${created}`, podUid: `uid-${created}` })) confirmed.push(id);
    }
    while (confirmed.length > live) ledger.release(confirmed.shift()!);
  }, LIFECYCLE_TICK_MS);
  tick.unref();
  handle.logger.info({ port: handle.port, live: ledger.size(Date.now()) }, 'bench pod lifecycle running');
}

await main();
