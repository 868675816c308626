/**
 * `mps-injector simulate`: replay pod traces against a simulated GPU cluster and compare
 * placement strategies; `mps-injector simulate generate-trace`: make a seeded trace.
 * A thin edge: parsing options, reading and writing files, printing. docs/simulation.md.
 */
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { join } from 'node:path';
import { defaultConfig } from '../config/schema.js';
import { PlacementPolicy } from '../domain/slot.js';
import type { PlacementConfig } from '../domain/slot.js';
import { ChartLibraryMissingError, buildChartSpec, renderChartSvg } from '../simulate/chart.js';
import { ClusterError, expandCluster } from '../simulate/cluster.js';
import { TRACE_KINDS, generateTrace, isTraceKind } from '../simulate/generateTrace.js';
import { SimulationInputError, expandTraceList, loadCluster, loadTrace, writeTextFile } from '../simulate/loadInputs.js';
import { hasReplicaSizedPod, replicaSizedTrace } from '../simulate/replicaSizedTrace.js';
import { renderTraceReport, summarizeSimulation } from '../simulate/report.js';
import type { TraceSummary } from '../simulate/report.js';
import { defaultSimulationSettings, runSimulation } from '../simulate/runSimulation.js';
import type { SimulationSettings } from '../simulate/runSimulation.js';
import { ObserveRule, STRATEGY_NAMES, isStrategyName } from '../simulate/strategies/placementStrategy.js';
import type { StrategyName } from '../simulate/strategies/placementStrategy.js';
import { TraceError, formatTraceJson } from '../simulate/trace.js';
import { CliError } from './cliError.js';
import { formatDocument } from './outputFormat.js';

const DEFAULT_SEED = 1;
/** The product's placement defaults, read from the configuration schema: the thread budget flags start from them. */
const PLACEMENT_DEFAULTS = defaultConfig().placement;

function numberOption(name: string, check: (n: number) => boolean, expected: string): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || !check(value)) throw new InvalidArgumentError(`${name} must be ${expected}, got "${text}".`);
    return value;
  };
}

const seconds = (name: string) => numberOption(name, (n) => n >= 0, 'a number of seconds, 0 or more');
const integer = (name: string, min: number) => numberOption(name, (n) => Number.isInteger(n) && n >= min, `a whole number of at least ${min}`);

function strategyList(text: string): StrategyName[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((n) => !isStrategyName(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`unknown strategy ${unknown.map((n) => `"${n}"`).join(', ') || '(none given)'}; choose from ${STRATEGY_NAMES.join(', ')}.`);
  }
  return names.filter(isStrategyName);
}

interface SimulateOptions {
  trace?: string;
  cluster?: string;
  policy: PlacementPolicy;
  out?: string;
  json?: boolean;
  output?: 'yaml' | 'json';
  seed?: number;
  metricsInterval: number;
  scrapeDelay: number;
  memoryRamp: number;
  replicas: number;
  timeSliceOverhead: number;
  strategies: StrategyName[];
  replicaSized?: boolean;
  maxThreadPercentSum: number;
  maxHighThreadPercentSum: number;
  threadCeilingHigh: number;
  threadCeilingLow: number;
  startLatency: number;
  observeRule: ObserveRule;
  unmanagedMemory: number;
}

/** Errors that come from what the user passed become a CliError: one message, exit code 2. */
function asCliError(err: unknown): unknown {
  const fromInput =
    err instanceof SimulationInputError || err instanceof TraceError || err instanceof ClusterError || err instanceof RangeError || err instanceof ChartLibraryMissingError;
  return fromInput ? new CliError((err as Error).message, 2) : err;
}

async function runSimulateCommand(opts: SimulateOptions): Promise<void> {
  if (opts.trace === undefined || opts.cluster === undefined) {
    throw new SimulationInputError(
      `simulate needs --trace and --cluster, e.g. "mps-injector simulate --trace all --cluster h100-4x8" (shipped traces: ${TRACE_KINDS.join(', ')}; clusters: see simulate/clusters/)`,
    );
  }
  const placementOverrides: Partial<PlacementConfig> = {};
  if (opts.maxThreadPercentSum !== PLACEMENT_DEFAULTS.maxThreadPercentSum) placementOverrides.maxThreadPercentSum = opts.maxThreadPercentSum;
  if (opts.maxHighThreadPercentSum !== PLACEMENT_DEFAULTS.maxHighThreadPercentSum) placementOverrides.maxHighThreadPercentSum = opts.maxHighThreadPercentSum;
  if (opts.threadCeilingHigh !== PLACEMENT_DEFAULTS.threadCeilingFactor.high || opts.threadCeilingLow !== PLACEMENT_DEFAULTS.threadCeilingFactor.low) {
    placementOverrides.threadCeilingFactor = { high: opts.threadCeilingHigh, low: opts.threadCeilingLow };
  }
  const settings: SimulationSettings = {
    ...defaultSimulationSettings(),
    policy: opts.policy,
    seed: opts.seed ?? DEFAULT_SEED,
    metricsIntervalS: opts.metricsInterval,
    scrapeDelayS: opts.scrapeDelay,
    memoryRampS: opts.memoryRamp,
    replicasPerGpu: opts.replicas,
    timeSliceOverhead: opts.timeSliceOverhead,
    strategies: opts.strategies,
    startLatency: { ...defaultSimulationSettings().startLatency, medianS: opts.startLatency },
    observeRule: opts.observeRule,
    unmanagedMiB: opts.unmanagedMemory,
    placementOverrides,
  };
  const cluster = await loadCluster(opts.cluster);
  const summaries: TraceSummary[] = [];
  const everyTrace = opts.trace.trim() === 'all';
  for (const traceArgument of expandTraceList(opts.trace)) {
    const loaded = await loadTrace(traceArgument);
    if (opts.replicaSized && everyTrace && !hasReplicaSizedPod(loaded, expandCluster(cluster), opts.replicas)) {
      // "all" includes traces whose pods are all larger than a replica (llm at 4 replicas): say so and go on.
      process.stderr.write(`skipped ${loaded.name}: no pod fits one of ${opts.replicas} replicas of a GPU; run it alone with a lower --replicas\n`);
      continue;
    }
    const trace = opts.replicaSized ? replicaSizedTrace(loaded, expandCluster(cluster), opts.replicas) : loaded;
    const result = runSimulation(trace, cluster, settings);
    summaries.push(summarizeSimulation(result));
    if (opts.out !== undefined) {
      const file = join(opts.out, `simulation-${trace.name}.svg`);
      await writeTextFile(file, await renderChartSvg(buildChartSpec(result)));
      process.stderr.write(`wrote ${file}\n`);
    }
  }
  const format = opts.json ? 'json' : opts.output;
  if (format !== undefined) {
    const { clock: _clock, ...plain } = settings;
    process.stdout.write(formatDocument({ cluster: cluster.name, settings: plain, traces: summaries }, format));
  } else {
    process.stdout.write(`${summaries.map(renderTraceReport).join('\n\n')}\n`);
  }
}

async function runGenerateTraceCommand(opts: { kind?: string; seed?: number; out?: string }): Promise<void> {
  if (opts.kind === undefined || !isTraceKind(opts.kind)) {
    throw new SimulationInputError(`generate-trace needs --kind ${TRACE_KINDS.join('|')}${opts.kind === undefined ? '' : ` (got "${opts.kind}")`}`);
  }
  const text = formatTraceJson(generateTrace(opts.kind, opts.seed ?? DEFAULT_SEED));
  if (opts.out === undefined) {
    process.stdout.write(text);
    return;
  }
  await writeTextFile(opts.out, text);
  process.stderr.write(`wrote ${opts.out}\n`);
}

export function registerSimulateCommand(program: Command): void {
  const simulate = program
    .command('simulate')
    .description('replay pod traces against a simulated GPU cluster and compare mps-injector with metrics-only, equal-split and time-slicing placement')
    .option('--trace <traces>', 'shipped trace name, path of a trace JSON file, a comma list of them, or "all"')
    .option('--cluster <cluster>', 'shipped cluster name (h100-4x8, h100-8x8, mixed) or path of a cluster JSON file')
    .addOption(new Option('--policy <policy>', 'packing policy of mps-injector and of the replica baselines').choices(Object.values(PlacementPolicy)).default(PlacementPolicy.Binpack))
    .option('--out <dir>', 'write one SVG chart per trace into this folder (simulation-<trace>.svg)')
    .addOption(new Option('-o, --output <format>', 'print figures as yaml or json instead of Markdown tables').choices(['yaml', 'json']))
    .option('--json', 'alias of -o json')
    .option('--seed <n>', 'seed of the compute noise and exporter phases (default 1)', integer('--seed', 0))
    .option('--metrics-interval <s>', 'dcgm-exporter sampling interval, seconds (above 0)', numberOption('--metrics-interval', (n) => n > 0, 'a number of seconds above 0'), 30)
    .option('--scrape-delay <s>', 'from a sample being taken to placement seeing it, seconds', seconds('--scrape-delay'), 15)
    .option('--memory-ramp <s>', 'a pod reaches its memory need linearly over this many seconds', seconds('--memory-ramp'), 60)
    .option('--replicas <n>', 'replicas per GPU of equal-split and time-slicing', integer('--replicas', 1), 4)
    .option('--time-slice-overhead <ratio>', 'share of GPU time lost to context switches under time-slicing', numberOption('--time-slice-overhead', (n) => n >= 0 && n < 1, 'a ratio in [0, 1)'), 0.05)
    .addOption(new Option('--strategies <list>', 'comma list of strategies to run').argParser(strategyList).default([...STRATEGY_NAMES], STRATEGY_NAMES.join(',')))
    .option('--start-latency <s>', 'median seconds from pod creation to its containers running (image pull, start); log-normal per pod', numberOption('--start-latency', (n) => n > 0, 'a number of seconds above 0'), defaultSimulationSettings().startLatency.medianS)
    .addOption(
      new Option('--observe-rule <rule>', "when mps-injector takes a reservation as visible in a sample: 'running' (after the warm-up; the product) or 'legacy' (from pod creation; the old rule, to compare)")
        .choices(Object.values(ObserveRule))
        .default(ObserveRule.Running),
    )
    .option('--unmanaged-memory <MiB>', 'memory every GPU carries for processes no strategy placed, MiB', numberOption('--unmanaged-memory', (n) => n >= 0, 'a number of MiB, 0 or more'), 0)
    .option('--replica-sized', 'keep only the pods that fit one equal-split replica (same-load comparison)')
    .option('--max-thread-percent-sum <n>', "mps-injector's placement.maxThreadPercentSum: thread percentages granted on one GPU, all pods together", integer('--max-thread-percent-sum', 1), PLACEMENT_DEFAULTS.maxThreadPercentSum)
    .option(
      '--max-high-thread-percent-sum <n>',
      "mps-injector's placement.maxHighThreadPercentSum: thread percentages granted to high-priority pods on one GPU",
      integer('--max-high-thread-percent-sum', 1),
      PLACEMENT_DEFAULTS.maxHighThreadPercentSum,
    )
    .option(
      '--thread-ceiling-high <factor>',
      "mps-injector's placement.threadCeilingFactor.high: a high-priority pod's MPS limit as a multiple of its reserved share (1: the share)",
      numberOption('--thread-ceiling-high', (n) => n >= 1 && n <= 100, 'a factor from 1 to 100'),
      PLACEMENT_DEFAULTS.threadCeilingFactor.high,
    )
    .option(
      '--thread-ceiling-low <factor>',
      "mps-injector's placement.threadCeilingFactor.low: a low-priority pod's MPS limit as a multiple of its reserved share (1: the share)",
      numberOption('--thread-ceiling-low', (n) => n >= 1 && n <= 100, 'a factor from 1 to 100'),
      PLACEMENT_DEFAULTS.threadCeilingFactor.low,
    )
    .action(async (opts: SimulateOptions) => {
      try {
        await runSimulateCommand(opts);
      } catch (err) {
        throw asCliError(err);
      }
    });

  simulate
    .command('generate-trace')
    .description(`write a seeded trace (${TRACE_KINDS.join(', ')}) as JSON; the same kind and seed give the same file`)
    .option('--kind <kind>', `trace kind: ${TRACE_KINDS.join(', ')}`)
    .option('--seed <n>', 'generator seed (default 1)', integer('--seed', 0))
    .option('--out <file>', 'write here instead of standard output')
    .action(async (_opts: unknown, command: Command) => {
      // --seed and --out are also options of `simulate`, which may take them first: read both levels.
      const opts = command.optsWithGlobals<{ kind?: string; seed?: number; out?: string }>();
      try {
        await runGenerateTraceCommand(opts);
      } catch (err) {
        throw asCliError(err);
      }
    });
}
