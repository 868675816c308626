/**
 * `mps-injector status` (and `kubectl mps status`): one row per GPU of the live cluster, counted
 * with the rule placement uses (placement/memoryAccounting.ts accountGpus) over the ledger a
 * webhook replica would rebuild now (cli/clusterState.ts).
 */
import type { Command } from 'commander';
import { formatMiB } from '../domain/quantity.js';
import type { GpuSample } from '../domain/inventory.js';
import { countUnreservedPods } from '../placement/chooseSlot.js';
import { accountGpus } from '../placement/memoryAccounting.js';
import type { GpuMemoryAccount } from '../placement/memoryAccounting.js';
import type { Reservation } from '../domain/slot.js';
import type { ReservationState } from '../domain/slot.js';
import type { ClusterCommandDeps, ClusterCommandFlags } from './clusterFlags.js';
import { addClusterFlags, clusterStateFor } from './clusterFlags.js';
import type { ClusterState } from './clusterState.js';
import { EXIT_CODES_HELP } from './cliError.js';
import { OutputFormat, formatAge, formatDocument, formatTable, textOutputOption } from './outputFormat.js';

/** Why a GPU is not a candidate now, in the words of placement's exclusion rules. */
export const GpuHealth = {
  Mig: 'MIG',
  Xid: 'XID',
  Stale: 'stale',
  NoMemoryMetrics: 'no-memory-metrics',
  NotInMetrics: 'not-in-metrics',
  OverCommitted: 'over-committed',
} as const;

/** A pod holding a reservation on a GPU. */
export interface GpuPodRow {
  pod: string;
  reservation: string;
  memoryMiB: number;
  /** Compute share reserved (what the budgets count). */
  threadPercent: number;
  /** The MPS limit, when above threadPercent. */
  threadCeilingPercent?: number;
  priority: string;
  state: ReservationState;
  /** Since when its GPU containers run, ISO time; null while they do not. */
  runningSince: string | null;
}

/** One GPU as status prints it; memory in MiB. */
export interface GpuStatusRow {
  node: string;
  index: number;
  uuid: string;
  model: string;
  /** Null when the exporter publishes no memory series for the GPU, or the GPU is missing from the metrics. */
  memory: GpuMemoryAccount | null;
  clients: number;
  maxClients: number;
  threadPercentSum: number;
  maxThreadPercentSum: number;
  utilPercent: number | null;
  /** Age of the GPU's sample, seconds; null when it has none. */
  metricsAgeSeconds: number | null;
  /** Empty when placement may use the GPU; else each reason it may not (cordoned, NotReady, MIG, XID 79, stale, ...). */
  health: string[];
  pods: GpuPodRow[];
}

export interface StatusFilters {
  /** Only these nodes. */
  nodes?: readonly string[];
  /** Only GPUs holding pods of this namespace, and only those pods. */
  namespace?: string;
}

function podRow(r: Reservation): GpuPodRow {
  const since = r.runningSinceMs;
  return {
    pod: r.podKey,
    reservation: r.id,
    memoryMiB: r.memoryMiB,
    threadPercent: r.threadPercent,
    ...(r.threadCeilingPercent !== undefined ? { threadCeilingPercent: r.threadCeilingPercent } : {}),
    priority: r.priority,
    state: r.state,
    runningSince: since === null || since === undefined ? null : new Date(since).toISOString(),
  };
}

/** The rows of every GPU in the metrics, plus GPUs that hold reservations but are missing from the metrics. */
export function gpuStatusRows(state: ClusterState, filters: StatusFilters = {}): GpuStatusRow[] {
  const { config } = state.target;
  const placement = config.placement;
  const nowMs = state.nowMs;
  const gpus: readonly GpuSample[] = state.inventory.gpus;
  const accounts = accountGpus(gpus, state.ledger, placement, nowMs);
  const rows: GpuStatusRow[] = accounts.map((account, i) => {
    const gpu = gpus[i] as GpuSample;
    const node = state.inventory.nodes[gpu.node];
    const ageSeconds = (nowMs - gpu.sampledAtMs) / 1000;
    const health: string[] = [];
    if (node?.schedulable === false) health.push(node.unschedulableReason ?? 'unschedulable');
    if (gpu.mig) health.push(GpuHealth.Mig);
    if (gpu.xid !== 0) health.push(`${GpuHealth.Xid} ${gpu.xid}`);
    if (ageSeconds > placement.maxMetricsAgeSeconds) health.push(GpuHealth.Stale);
    if (account.account === null) health.push(GpuHealth.NoMemoryMetrics);
    else if (account.account.committedMiB > account.account.totalMiB) health.push(GpuHealth.OverCommitted);
    const sums = state.ledger.totals(gpu.uuid, nowMs);
    return {
      node: gpu.node,
      index: gpu.index,
      uuid: gpu.uuid,
      model: gpu.model,
      memory: account.account,
      clients: sums.clients + countUnreservedPods(gpu.pods, sums.reservations),
      maxClients: placement.maxClientsPerGpu,
      threadPercentSum: account.threadPercent,
      maxThreadPercentSum: placement.maxThreadPercentSum,
      utilPercent: gpu.utilPercent,
      metricsAgeSeconds: Math.max(0, Math.floor(ageSeconds)),
      health,
      pods: account.reservations.map(podRow),
    };
  });
  // Reservations on GPUs the metrics do not show (exporter down, GPU gone): still capacity held.
  const seen = new Set(gpus.map((g) => g.uuid));
  const orphans = new Map<string, Reservation[]>();
  for (const r of state.ledger.list(nowMs)) {
    if (seen.has(r.gpuUuid)) continue;
    orphans.set(r.gpuUuid, [...(orphans.get(r.gpuUuid) ?? []), r]);
  }
  for (const [uuid, reservations] of orphans) {
    const first = reservations[0] as Reservation;
    rows.push({
      node: first.node,
      index: -1,
      uuid,
      model: '',
      memory: null,
      clients: reservations.length,
      maxClients: placement.maxClientsPerGpu,
      threadPercentSum: reservations.reduce((s, r) => s + r.threadPercent, 0),
      maxThreadPercentSum: placement.maxThreadPercentSum,
      utilPercent: null,
      metricsAgeSeconds: null,
      health: [GpuHealth.NotInMetrics],
      pods: reservations.map(podRow),
    });
  }

  const nodes = filters.nodes !== undefined && filters.nodes.length > 0 ? new Set(filters.nodes) : null;
  const namespace = filters.namespace;
  return rows
    .filter((row) => nodes === null || nodes.has(row.node))
    .map((row) => (namespace === undefined ? row : { ...row, pods: row.pods.filter((p) => p.pod.startsWith(`${namespace}/`)) }))
    .filter((row) => namespace === undefined || row.pods.length > 0);
}

const mem = (mib: number | undefined): string => (mib === undefined ? '<none>' : formatMiB(mib));

function podsCell(pods: readonly GpuPodRow[], wide: boolean): string {
  if (pods.length === 0) return '<none>';
  const names = pods.map((p) => p.pod);
  if (wide || names.length <= 2) return names.join(',');
  return `${names.slice(0, 2).join(',')} +${names.length - 2}`;
}

/** The table, kubectl style; `wide` adds the UUID, total, committed, unobserved grants and utilisation. */
export function renderStatusTable(rows: readonly GpuStatusRow[], wide: boolean): string {
  const headers = wide
    ? ['NODE', 'GPU', 'UUID', 'MODEL', 'TOTAL', 'GRANTED', 'USED', 'UNRESERVED', 'UNOBSERVED', 'COMMITTED', 'FREE', 'CLIENTS', 'THREADS', 'UTIL', 'AGE', 'HEALTH', 'PODS']
    : ['NODE', 'GPU', 'MODEL', 'GRANTED', 'USED', 'UNRESERVED', 'FREE', 'CLIENTS', 'THREADS', 'AGE', 'HEALTH', 'PODS'];
  const cells = rows.map((r) => {
    const m = r.memory ?? undefined;
    const common = {
      gpu: r.index < 0 ? '?' : String(r.index),
      model: r.model === '' ? '<unknown>' : r.model.replace(/^NVIDIA\s+/i, ''),
      clients: `${r.clients}/${r.maxClients}`,
      threads: `${r.threadPercentSum}/${r.maxThreadPercentSum}`,
      age: r.metricsAgeSeconds === null ? '<none>' : formatAge(r.metricsAgeSeconds),
      health: r.health.length === 0 ? 'ok' : r.health.join(','),
    };
    return wide
      ? [r.node, common.gpu, r.uuid, common.model, mem(m?.totalMiB), mem(m?.grantedMiB), mem(m?.observedUsedMiB), mem(m?.unreservedUsedMiB), mem(m?.unobservedMiB), mem(m?.committedMiB), mem(m?.freeMiB), common.clients, common.threads, r.utilPercent === null ? '<none>' : `${r.utilPercent}%`, common.age, common.health, podsCell(r.pods, true)]
      : [r.node, common.gpu, common.model, mem(m?.grantedMiB), mem(m?.observedUsedMiB), mem(m?.unreservedUsedMiB), mem(m?.freeMiB), common.clients, common.threads, common.age, common.health, podsCell(r.pods, false)];
  });
  return formatTable(headers, cells);
}

/** The document -o yaml|json prints. */
export function statusDocument(state: ClusterState, rows: readonly GpuStatusRow[]): Record<string, unknown> {
  return {
    apiVersion: 'mps-injector.io/v1',
    kind: 'GpuStatusList',
    metadata: {
      generatedAt: new Date(state.nowMs).toISOString(),
      webhookNamespace: state.target.namespace,
      configuration: state.target.configOrigin,
      metricsSource: state.metricsSource,
      problems: state.problems,
    },
    items: rows,
  };
}

export interface StatusOptions extends ClusterCommandFlags {
  node?: string[];
  namespace?: string;
  output?: string;
}

export interface CommandRun {
  stdout: string;
  stderr: string[];
  exitCode: 0 | 1;
}

/** The whole command without touching process state, so tests and the CLI share it. */
export async function runStatus(opts: StatusOptions, deps: ClusterCommandDeps = {}): Promise<CommandRun> {
  const state = await clusterStateFor(opts, deps);
  const nodes = (opts.node ?? []).flatMap((n) => n.split(',')).map((n) => n.trim()).filter((n) => n !== '');
  const rows = gpuStatusRows(state, { nodes, ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}) });
  const stderr = state.problems.map((p) => `warning: ${p}`);
  if (opts.output === OutputFormat.Json || opts.output === OutputFormat.Yaml) {
    return { stdout: formatDocument(statusDocument(state, rows), opts.output), stderr, exitCode: 0 };
  }
  if (rows.length === 0) {
    const scope = [nodes.length > 0 ? `on node ${nodes.join(',')}` : '', opts.namespace !== undefined ? `holding pods of namespace ${opts.namespace}` : ''].filter((s) => s !== '').join(' ');
    return { stdout: '', stderr: [...stderr, `No GPUs found${scope === '' ? '' : ` ${scope}`} (metrics: ${state.metricsSource}).`], exitCode: 0 };
  }
  return { stdout: renderStatusTable(rows, opts.output === OutputFormat.Wide), stderr, exitCode: 0 };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description("one row per GPU of the live cluster: granted memory, observed use, unreserved use and free room as placement counts them, clients, thread-percent sum, metric age, health and pods")
    .option('--node <name>', 'only this node (repeat, or a comma list)', collect)
    .option('-n, --namespace <namespace>', "only GPUs holding pods of this namespace, and only those pods")
    .addOption(textOutputOption({ wide: true }));
  addClusterFlags(command).addHelpText('after', `\n${EXIT_CODES_HELP}`);
  command.action(async (opts: StatusOptions) => {
    const run = await runStatus(opts);
    for (const line of run.stderr) process.stderr.write(`${line}\n`);
    process.stdout.write(run.stdout);
    process.exitCode = run.exitCode;
  });
}
