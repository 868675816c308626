/**
 * `mps-injector inject`: the offline twin of the webhook. Reads Pods and workloads, and GPU
 * metrics (a dcgm-exporter dump, an exporter or Prometheus URL, or with --cluster the live
 * cluster's metrics and ledger), places every pod in order (later ones see the reservations of
 * earlier ones), prints the placed Pods (and a placement preview per workload) on stdout, each
 * decision and refusal on stderr, then a summary line. Exit 1 when any pod was refused.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { stringify } from 'yaml';
import { admitPod } from '../admission/admitPod.js';
import type { Config } from '../config/schema.js';
import { defaultConfig } from '../config/schema.js';
import { FileSampleTime } from '../dcgm/ingestionLimits.js';
import type { GpuInventory } from '../domain/inventory.js';
import { FileMetricsSource } from '../dcgm/sources.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { formatMiB } from '../domain/quantity.js';
import { randomKeyRing } from '../domain/decisionRecord.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import type { SlotChoice } from '../domain/slot.js';
import { CliError, EXIT_CODES_HELP, ExitCode, inputError } from './cliError.js';
import type { ClusterCommandDeps } from './clusterFlags.js';
import { clusterStateFor } from './clusterFlags.js';
import { asInputError, metricsSourceFromUrl } from './clusterState.js';
import { loadConfigFile } from './loadConfigFile.js';
import { documentOutputOption } from './outputFormat.js';
import { readManifests } from './readPods.js';
import type { Manifest } from './readPods.js';
import { loadDecisionKeyRing } from '../webhook/decisionKeys.js';

export interface InjectOptions {
  file: string;
  /** A dcgm-exporter dump, an exporter /metrics URL or a Prometheus URL; optional with --cluster. */
  metrics?: string;
  config?: string;
  output: 'yaml' | 'json';
  metricsAgeFromFile?: boolean;
  /** Place against the live cluster's metrics and ledger (read-only). */
  cluster?: boolean;
  /** Print where each pod would go (a PlacementPreview) instead of the mutated Pods. */
  dryRun?: boolean;
  kubeconfig?: string;
  context?: string;
  webhookNamespace?: string;
}

export interface InjectRun {
  stdout: string;
  stderr: string[];
  exitCode: 0 | 1;
}

async function readInput(path: string, stdin: () => Promise<string>): Promise<string> {
  if (path === '-') return stdin();
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw inputError(`cannot read pod file ${path}: ${(err as Error).message}`);
  }
}

/**
 * The dump, read as the webhook reads metrics.file: the same source, the same byte limit,
 * and the same sample time (metrics.fileSampleTime; --metrics-age-from-file forces the
 * modification time).
 */
export async function loadInventory(path: string, nowMs: number, metrics: Config['metrics']): Promise<GpuInventory> {
  let inventory: GpuInventory;
  try {
    inventory = await new FileMetricsSource(path, { sampleTime: metrics.fileSampleTime, maxBytes: metrics.maxBodyBytes }).fetch(nowMs);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (inventory.gpus.length === 0) {
    throw new CliError(
      `${path} holds no GPU series: give a dcgm-exporter /metrics dump (curl http://<exporter>:9400/metrics)${inventory.problems.length > 0 ? ` (${inventory.problems.join('; ')})` : ''}`,
    );
  }
  return inventory;
}


/** Where one pod would go. */
interface ReplicaPlacement {
  pod: string;
  node: string;
  gpuIndex: number;
  gpuUuid: string;
  memoryLimit: string;
  threadPercent: number;
  /** The MPS limit, when above threadPercent. */
  threadCeilingPercent?: number;
  priority: string;
  reason: string;
}

/** The what-if `inject` prints for a workload (the webhook places its pods one by one as they are created), or for a pod with --dry-run. */
function placementPreview(subject: { apiVersion: string; kind: string; name: string; namespace: string }, pods: number, placed: ReplicaPlacement[]): Record<string, unknown> {
  return {
    apiVersion: 'mps-injector.io/v1',
    kind: 'PlacementPreview',
    metadata: { name: subject.name, namespace: subject.namespace },
    target: { apiVersion: subject.apiVersion, kind: subject.kind, name: subject.name },
    pods,
    placed: placed.length,
    refused: pods - placed.length,
    placements: placed,
  };
}

const placementOf = (label: string, choice: SlotChoice): ReplicaPlacement => ({
  pod: label,
  node: choice.node,
  gpuIndex: choice.gpuIndex,
  gpuUuid: choice.gpuUuid,
  memoryLimit: formatMiB(choice.memoryLimitMiB),
  threadPercent: choice.threadPercent,
  ...(choice.threadCeilingPercent !== undefined ? { threadCeilingPercent: choice.threadCeilingPercent } : {}),
  priority: choice.priority,
  reason: choice.reason,
});

/** "no GPU fits 6Gi" from "mps-injector: no GPU fits 6Gi: 16 considered, ...": the part refusals are grouped by. */
export function refusalGroup(message: string): string {
  const text = message.replace(/^mps-injector:\s*/, '');
  const colon = text.indexOf(':');
  return (colon < 0 ? text : text.slice(0, colon)).trim();
}

/** "placed 12 of 60; 48 refused: 48 no GPU fits 6Gi" */
export function summaryLine(placed: number, total: number, refusals: readonly string[], notInjected: number): string {
  const groups = new Map<string, number>();
  for (const r of refusals) groups.set(refusalGroup(r), (groups.get(refusalGroup(r)) ?? 0) + 1);
  const parts = [...groups].sort((a, b) => b[1] - a[1]).map(([group, n]) => `${n} ${group}`);
  return [
    `placed ${placed} of ${total}`,
    ...(refusals.length > 0 ? [`${refusals.length} refused: ${parts.join(', ')}`] : []),
    ...(notInjected > 0 ? [`${notInjected} not injected`] : []),
  ].join('; ');
}

interface PlacementWorld {
  config: Config;
  inventory: GpuInventory;
  ledger: ReservationLedger;
  keys: DecisionKeyRing;
  problems: string[];
}

async function offlineWorld(opts: InjectOptions, config: Config, nowMs: number): Promise<PlacementWorld> {
  if (opts.metrics === undefined) throw new CliError('inject needs --metrics (a dcgm-exporter dump, an exporter /metrics URL or a Prometheus URL), or --cluster to use the live cluster');
  const source = metricsSourceFromUrl(opts.metrics, config.metrics.timeoutMs);
  let inventory: GpuInventory;
  if (source === null) {
    try {
      const metrics = opts.metricsAgeFromFile === true ? { ...config.metrics, fileSampleTime: FileSampleTime.Modified } : config.metrics;
      inventory = await loadInventory(opts.metrics, nowMs, metrics);
    } catch (err) {
      throw err instanceof CliError ? inputError(err.message) : err;
    }
  } else {
    try {
      inventory = await source.fetch(nowMs);
    } catch (err) {
      throw asInputError(err);
    }
    if (inventory.gpus.length === 0) throw inputError(`${opts.metrics} gave no GPU: ${inventory.problems.join('; ') || 'no DCGM series'}`);
  }
  const problems = inventory.skippedLines > 0 ? [`metrics: skipped ${inventory.skippedLines} malformed line(s) in ${opts.metrics}`] : [];
  for (const problem of inventory.problems) problems.push(`metrics: ${problem}`);
  return { config, inventory, ledger: new ReservationLedger({ ttlMs: config.reservations.ttlSeconds * 1000 }), keys: await loadDecisionKeyRing(config), problems };
}

async function clusterWorld(opts: InjectOptions, deps: InjectDeps): Promise<PlacementWorld> {
  const state = await clusterStateFor(
    {
      ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
      ...(opts.context !== undefined ? { context: opts.context } : {}),
      ...(opts.webhookNamespace !== undefined ? { webhookNamespace: opts.webhookNamespace } : {}),
      ...(opts.config !== undefined ? { config: opts.config } : {}),
      ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    },
    { ...deps, now: () => deps.nowMs },
  );
  // The ledger is this process's copy: nothing reaches the cluster. Decisions are sealed with a
  // throw-away key, so a printed pod never carries a decision the webhook would honour.
  return { config: state.target.config, inventory: state.inventory, ledger: state.ledger, keys: randomKeyRing(), problems: state.problems.map((p) => `cluster: ${p}`) };
}

export interface InjectDeps extends Omit<ClusterCommandDeps, 'now'> {
  stdin: () => Promise<string>;
  nowMs: number;
}

/** Runs the whole command without touching process state, so tests and the CLI share it. */
export async function runInject(opts: InjectOptions, io: InjectDeps): Promise<InjectRun> {
  const manifests: Manifest[] = readManifests(await readInput(opts.file, io.stdin), opts.file === '-' ? 'standard input' : opts.file);
  const world = opts.cluster ? await clusterWorld(opts, io) : await offlineWorld(opts, opts.config ? await loadConfigFile(opts.config) : defaultConfig(), io.nowMs);
  const { config, inventory, ledger, keys } = world;
  const stderr: string[] = [...world.problems];
  const out: unknown[] = [];
  const refusals: string[] = [];
  let total = 0;
  let placedCount = 0;
  let notInjected = 0;
  let uid = 0;

  /** Admit one pod; returns its placement when it got one. */
  const place = (pod: Pod): { placed: ReplicaPlacement | null; mutated: Pod | null } => {
    total++;
    uid++;
    const namespace = pod.metadata?.namespace ?? 'default';
    const label = `${namespace}/${pod.metadata?.name ?? `${pod.metadata?.generateName ?? 'pod'}*`}`;
    const admission = admitPod({ pod, namespace, requestUid: `offline-${uid}`, dryRun: false }, { config, inventory, ledger, nowMs: io.nowMs, keys });
    switch (admission.outcome) {
      case 'mutated':
        placedCount++;
        stderr.push(`${label}: ${admission.reinjected ? 'already injected, unchanged' : admission.choice.reason}`);
        for (const w of admission.warnings) stderr.push(`${label}: warning: ${w}`);
        return { placed: placementOf(label, admission.choice), mutated: admission.mutated };
      case 'skipped':
        notInjected++;
        stderr.push(`${label}: not injected: ${admission.reason}`);
        return { placed: null, mutated: pod };
      case 'allowed-unmutated':
        notInjected++;
        stderr.push(`${label}: warning: ${admission.warning}`);
        return { placed: null, mutated: pod };
      case 'refused':
        refusals.push(admission.message);
        stderr.push(`${label}: refused: ${admission.message}`);
        return { placed: null, mutated: null };
    }
  };

  for (const manifest of manifests) {
    switch (manifest.kind) {
      case 'pod': {
        const { placed, mutated } = place(manifest.pod);
        const namespace = manifest.pod.metadata?.namespace ?? 'default';
        if (opts.dryRun) {
          if (placed !== null) out.push(placementPreview({ apiVersion: 'v1', kind: 'Pod', name: manifest.pod.metadata?.name ?? manifest.pod.metadata?.generateName ?? '', namespace }, 1, [placed]));
        } else if (mutated !== null) {
          out.push(mutated);
        }
        break;
      }
      case 'workload': {
        const placed: ReplicaPlacement[] = [];
        for (const pod of manifest.pods) {
          const result = place(pod);
          if (result.placed !== null) placed.push(result.placed);
        }
        out.push(placementPreview(manifest.workload, manifest.pods.length, placed));
        break;
      }
      case 'unsupported': {
        total++;
        const message = `not placed: ${manifest.reason}`;
        refusals.push(message);
        stderr.push(`document ${manifest.document} (${manifest.what}): ${message}`);
        break;
      }
    }
  }
  stderr.push(summaryLine(placedCount, total, refusals, notInjected));

  const stdout =
    opts.output === 'json'
      ? out.length === 0
        ? ''
        : `${JSON.stringify(out.length === 1 ? out[0] : { apiVersion: 'v1', kind: 'List', items: out }, null, 2)}\n`
      : out.map((p) => stringify(p, { lineWidth: 0 })).join('---\n');
  return { stdout, stderr, exitCode: refusals.length > 0 ? ExitCode.Refused : ExitCode.Ok };
}

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

export function registerInjectCommand(program: Command): void {
  program
    .command('inject')
    .description(
      'place and inject Pods like the webhook would, in order, each seeing the ones before: placed Pods (and a placement preview per Deployment, StatefulSet, ReplicaSet, Job or CronJob) on stdout, decisions and refusals on stderr, then a summary',
    )
    .requiredOption('-f, --file <path>', 'Pod and workload manifest(s): YAML (multi-document) or JSON; "-" reads standard input')
    .option('--metrics <file-or-url>', 'a dcgm-exporter /metrics dump, an exporter URL (http://<exporter>:9400/metrics) or a Prometheus base URL; with --cluster, replaces the live metrics')
    .option('--cluster', "place against the live cluster: its metrics and its reservation ledger, read through the kubeconfig (nothing is written)", false)
    .option('--dry-run', 'print where each pod would go (a PlacementPreview) instead of the mutated Pods', false)
    .option('--config <path>', 'webhook configuration YAML (defaults apply otherwise; with --cluster, the webhook\'s own)')
    .addOption(documentOutputOption())
    .option('--json', 'alias of -o json')
    .option('--metrics-age-from-file', "take the samples' time from the dump's modification time instead of now", false)
    .option('--kubeconfig <path>', 'with --cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'with --cluster: kubeconfig context')
    .option('--webhook-namespace <namespace>', "with --cluster: the webhook's namespace (default mps-injector)")
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (opts: InjectOptions & { json?: boolean }) => {
      const run = await runInject({ ...opts, output: opts.json ? 'json' : opts.output }, { stdin: readStdin, nowMs: Date.now() });
      for (const line of run.stderr) process.stderr.write(`${line}\n`);
      process.stdout.write(run.stdout);
      process.exitCode = run.exitCode;
    });
}
