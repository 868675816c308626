/**
 * `mps-injector inject`: the offline twin of the webhook. Reads Pods and a DCGM dump,
 * places each Pod in order (later ones see the reservations of earlier ones), prints the
 * mutated Pods on stdout and the decisions on stderr.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { stringify } from 'yaml';
import { admitPod } from '../admission/admitPod.js';
import type { Config } from '../config/schema.js';
import { defaultConfig } from '../config/schema.js';
import { FileSampleTime } from '../dcgm/ingestionLimits.js';
import type { GpuInventory } from '../dcgm/inventory.js';
import { FileMetricsSource } from '../dcgm/sources.js';
import { ReservationLedger } from '../placement/ledger.js';
import { CliError } from './cliError.js';
import { loadConfigFile } from './loadConfigFile.js';
import { readPods } from './readPods.js';
import { loadDecisionKeyRing } from '../webhook/decisionKeys.js';

export interface InjectOptions {
  file: string;
  metrics: string;
  config?: string;
  output: 'yaml' | 'json';
  metricsAgeFromFile?: boolean;
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
    throw new CliError(`cannot read pod file ${path}: ${(err as Error).message}`);
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

/** Runs the whole command without touching process state, so tests and the CLI share it. */
export async function runInject(opts: InjectOptions, io: { stdin: () => Promise<string>; nowMs: number }): Promise<InjectRun> {
  const config: Config = opts.config ? await loadConfigFile(opts.config) : defaultConfig();
  const pods = readPods(await readInput(opts.file, io.stdin), opts.file === '-' ? 'standard input' : opts.file);
  const metrics = opts.metricsAgeFromFile === true ? { ...config.metrics, fileSampleTime: FileSampleTime.Modified } : config.metrics;
  const inventory = await loadInventory(opts.metrics, io.nowMs, metrics);
  const ledger = new ReservationLedger({ ttlMs: config.reservations.ttlSeconds * 1000 });
  const keys = await loadDecisionKeyRing(config);
  const stderr: string[] = [];
  if (inventory.skippedLines > 0) stderr.push(`metrics: skipped ${inventory.skippedLines} malformed line(s) in ${opts.metrics}`);
  for (const problem of inventory.problems) stderr.push(`metrics: ${problem}`);

  const out: Pod[] = [];
  for (const [i, pod] of pods.entries()) {
    const namespace = pod.metadata?.namespace ?? 'default';
    const label = `${namespace}/${pod.metadata?.name ?? `${pod.metadata?.generateName ?? 'pod'}*`}`;
    const admission = admitPod({ pod, namespace, requestUid: `offline-${i + 1}`, dryRun: false }, { config, inventory, ledger, nowMs: io.nowMs, keys });
    switch (admission.outcome) {
      case 'mutated':
        out.push(admission.mutated);
        stderr.push(`${label}: ${admission.reinjected ? 'already injected, unchanged' : admission.choice.reason}`);
        for (const w of admission.warnings) stderr.push(`${label}: warning: ${w}`);
        break;
      case 'skipped':
        out.push(pod);
        stderr.push(`${label}: not injected: ${admission.reason}`);
        break;
      case 'allowed-unmutated':
        out.push(pod);
        stderr.push(`${label}: warning: ${admission.warning}`);
        break;
      case 'refused':
        return { stdout: '', stderr: [...stderr, `${label}: refused: ${admission.message}`], exitCode: 1 };
    }
  }

  const stdout =
    opts.output === 'json'
      ? `${JSON.stringify(out.length === 1 ? out[0] : { apiVersion: 'v1', kind: 'List', items: out }, null, 2)}\n`
      : out.map((p) => stringify(p, { lineWidth: 0 })).join('---\n');
  return { stdout, stderr, exitCode: 0 };
}

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

export function registerInjectCommand(program: Command): void {
  program
    .command('inject')
    .description('place and inject Pods offline, like the webhook would (mutated Pods on stdout, decisions on stderr)')
    .requiredOption('-f, --file <path>', 'Pod manifest(s): YAML (multi-document) or JSON; "-" reads standard input')
    .requiredOption('--metrics <path>', 'a dcgm-exporter /metrics dump')
    .option('--config <path>', 'webhook configuration YAML (defaults apply otherwise)')
    .option('-o, --output <format>', 'yaml or json', 'yaml')
    .option('--metrics-age-from-file', "take the samples' time from the dump's modification time instead of now (metrics.fileSampleTime: modified)", false)
    .action(async (opts: { file: string; metrics: string; config?: string; output: string; metricsAgeFromFile: boolean }) => {
      if (opts.output !== 'yaml' && opts.output !== 'json') throw new CliError(`--output must be yaml or json, got ${JSON.stringify(opts.output)}`);
      const run = await runInject({ ...opts, output: opts.output }, { stdin: readStdin, nowMs: Date.now() });
      for (const line of run.stderr) process.stderr.write(`${line}\n`);
      process.stdout.write(run.stdout);
      process.exitCode = run.exitCode;
    });
}
