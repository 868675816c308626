#!/usr/bin/env node
/**
 * The result tables of docs/simulation.md (and the burst table of README.md), made by running
 * the simulator from the build (`npm run build` first; `npm run docs:simulation` does both).
 *
 *   node scripts/simulation-doc.mjs           print every generated block
 *   node scripts/simulation-doc.mjs --write   replace the blocks in the documents, and the charts in docs/img
 *
 * A block lies between `<!-- simulation:NAME:start ... -->` and `<!-- simulation:NAME:end -->`.
 * Every figure is exact for seed 1 except the decision times (wall clock). The targets block
 * is computed from the same runs: "met" and "missed" are never written by hand.
 *
 * "Before" is the placement without the high-priority budget: maxHighThreadPercentSum set to
 * maxThreadPercentSum, which makes the high-priority check a no-op (the rule of 0.1.0).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(repoRoot, 'dist');
if (!existsSync(path.join(dist, 'simulate', 'runSimulation.js'))) {
  process.stderr.write('simulation-doc: dist/ has no simulator; run "npm run build" first (or "npm run docs:simulation")\n');
  process.exit(2);
}
const load = (module) => import(path.join(dist, module));
const { defaultSimulationSettings, runSimulation } = await load('simulate/runSimulation.js');
const { renderMarkdownTable, renderUtilisationTable, summarizeSimulation } = await load('simulate/report.js');
const { loadCluster, loadTrace } = await load('simulate/loadInputs.js');
const { replicaSizedTrace } = await load('simulate/replicaSizedTrace.js');
const { expandCluster } = await load('simulate/cluster.js');
const { buildChartSpec, renderChartSvg, ChartLibraryMissingError } = await load('simulate/chart.js');
const { defaultConfig } = await load('config/schema.js');

const TRACES = ['burst', 'steady', 'diurnal', 'llm'];
const CLUSTERS = ['h100-4x8', 'h100-8x8'];
const placementDefaults = defaultConfig().placement;
/** The placement before the high-priority budget: the same check with a budget that never binds. */
const BEFORE = { maxHighThreadPercentSum: placementDefaults.maxThreadPercentSum };

function settingsWith(overrides = {}) {
  return { ...defaultSimulationSettings(), ...overrides };
}

function log(text) {
  process.stderr.write(`${text}\n`);
}

/** One trace on one cluster: every strategy with the product defaults, and mps-injector as it was before. */
async function runCase(traceName, clusterName, { replicaSized = false, replicas = 4 } = {}) {
  const cluster = await loadCluster(clusterName);
  const loaded = await loadTrace(traceName);
  const trace = replicaSized ? replicaSizedTrace(loaded, expandCluster(cluster), replicas) : loaded;
  const started = Date.now();
  const result = runSimulation(trace, cluster, settingsWith({ replicasPerGpu: replicas }));
  const before = runSimulation(trace, cluster, settingsWith({ replicasPerGpu: replicas, strategies: ['mps-injector'], placementOverrides: BEFORE }));
  log(`simulated ${trace.name} on ${clusterName} (${replicas} replicas) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const summary = summarizeSimulation(result);
  return { trace: trace.name, base: traceName, cluster: clusterName, replicas, result, summary, before: summarizeSimulation(before).strategies[0], by: (name) => summary.strategies.find((s) => s.strategy === name) };
}

const fmt = (value, digits = 2) => (value === null || value === undefined ? 'n/a' : value.toFixed(digits));
const pct = (value) => (value === null || value === undefined ? 'n/a' : `${(value * 100).toFixed(1)} %`);
const yes = (ok) => (ok ? 'met' : '**missed**');

const cases = {};
for (const cluster of CLUSTERS) for (const trace of TRACES) cases[`${trace}@${cluster}`] = await runCase(trace, cluster);
const llmTwoReplicas = await runCase('llm', 'h100-4x8', { replicas: 2 });
const sameLoad = [];
for (const trace of ['burst', 'steady', 'diurnal']) sameLoad.push(await runCase(trace, 'h100-8x8', { replicaSized: true }));
sameLoad.push(await runCase('llm', 'h100-8x8', { replicaSized: true, replicas: 2 }));

// ---- blocks -------------------------------------------------------------------------------

function resultsBlock(cluster) {
  const parts = [];
  for (const trace of TRACES) {
    const c = cases[`${trace}@${cluster}`];
    const chart = cluster === 'h100-4x8' ? `\n\n![${trace}: GPUs in use and over-commit events per strategy](img/simulation-${trace}.svg)` : '';
    parts.push(`${renderMarkdownTable(c.summary)}\n\n${renderUtilisationTable(c.summary)}${chart}`);
  }
  return parts.join('\n\n');
}

function llmReplicasBlock() {
  const c = llmTwoReplicas;
  return `${renderMarkdownTable(c.summary)}\n\n${renderUtilisationTable(c.summary)}`;
}

function sameLoadBlock() {
  const header = ['Trace (replica-sized, h100-8x8)', 'Replicas', 'Pods', 'mps-injector GPU-h', 'equal-split GPU-h', 'mps-injector uses', 'High-priority p95: mps-injector / time-slicing', 'Low-priority p95: before / now'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const c of sameLoad) {
    const mps = c.by('mps-injector');
    const es = c.by('equal-split');
    const fewer = es.gpuHours > 0 ? (es.gpuHours - mps.gpuHours) / es.gpuHours : null;
    lines.push(
      `| ${[
        c.base,
        c.replicas,
        c.summary.pods,
        fmt(mps.gpuHours, 1),
        fmt(es.gpuHours, 1),
        fewer === null ? 'n/a' : `${(fewer * 100).toFixed(1)} % fewer`,
        `${fmt(mps.p95SlowdownHigh)} / ${fmt(c.by('time-slicing').p95SlowdownHigh)}`,
        `${fmt(c.before.p95SlowdownLow)} / ${fmt(mps.p95SlowdownLow)}`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function budgetBlock() {
  const header = ['Trace', 'Cluster', 'Admitted: before / now', 'GPU-hours: before / now', 'High-priority p95: before / now / time-slicing', 'Low-priority p95: before / now'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const c of [...Object.values(cases), ...sameLoad]) {
    const now = c.by('mps-injector');
    lines.push(
      `| ${[
        c.trace + (c.replicas !== 4 ? ` (${c.replicas} replicas)` : ''),
        c.cluster,
        `${c.before.admitted} / ${now.admitted} of ${c.summary.pods}`,
        `${fmt(c.before.gpuHours, 1)} / ${fmt(now.gpuHours, 1)}`,
        `${fmt(c.before.p95SlowdownHigh)} / ${fmt(now.p95SlowdownHigh)} / ${fmt(c.by('time-slicing').p95SlowdownHigh)}`,
        `${fmt(c.before.p95SlowdownLow)} / ${fmt(now.p95SlowdownLow)}`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

async function lagBlock() {
  const rows = [
    ['default (30 s interval, 15 s delay, 60 s ramp)', {}],
    ['snapshots only (`--memory-ramp 0`)', { memoryRampS: 0 }],
    ['ramp only (`--metrics-interval 0.0000001 --scrape-delay 0`)', { metricsIntervalS: 1e-7, scrapeDelayS: 0 }],
    ['none (all three at 0)', { metricsIntervalS: 1e-7, scrapeDelayS: 0, memoryRampS: 0 }],
    ['none, and pods run the moment they are created', { metricsIntervalS: 1e-7, scrapeDelayS: 0, memoryRampS: 0, startLatency: { medianS: 0.001, sigma: 0, minS: 0, maxS: 0 } }],
  ];
  const traces = ['burst', 'steady', 'diurnal', 'llm'];
  const cluster = await loadCluster('h100-4x8');
  const lines = [`| Lag | ${traces.join(' | ')} | mps-injector (all traces) |`, `| --- |${traces.map(() => ' ---: ').join('|')}| ---: |`];
  for (const [label, overrides] of rows) {
    const cells = [];
    let mpsEvents = 0;
    for (const name of traces) {
      const trace = await loadTrace(name);
      const result = runSimulation(trace, cluster, settingsWith({ ...overrides, strategies: ['metrics-only', 'mps-injector'] }));
      const [metricsOnly, mps] = summarizeSimulation(result).strategies;
      cells.push(`${metricsOnly.overcommitEvents} (${metricsOnly.overcommitPods})`);
      mpsEvents += mps.overcommitEvents;
    }
    lines.push(`| ${label} | ${cells.join(' | ')} | ${mpsEvents} |`);
  }
  log('simulated the metrics-lag rows');
  return lines.join('\n');
}

/** How mps-injector packs the llm trace: per GPU-hour in use, the servers, asked compute and memory limits it hosts. */
/**
 * mps-injector under several MPS limits (placement.threadCeilingFactor, high / low) on h100-4x8,
 * against time-slicing: what a limit above the reserved share buys high-priority pods and costs
 * low-priority ones. Placement counts reserved shares either way.
 */
async function ceilingBlock() {
  const factors = [
    [1, 1],
    [1.5, 1],
    [1, 1.5],
    [1.5, 1.5],
    [2.5, 2.5],
  ];
  const cluster = await loadCluster('h100-4x8');
  const header = ['Trace', 'MPS limit (high / low)', 'Admitted', 'GPU-hours', 'High-priority p95', 'Low-priority p95', 'SM utilisation', 'Served requests/s', 'Mean response time (s)'];
  const lines = [`| ${header.join(' | ')} |`, `| --- | --- |${header.slice(2).map(() => ' ---: ').join('|')}|`];
  const row = (trace, label, s) =>
    `| ${trace} | ${label} | ${s.admitted} | ${fmt(s.gpuHours, 1)} | ${fmt(s.p95SlowdownHigh, 3)} | ${fmt(s.p95SlowdownLow, 3)} | ${pct(s.meanSmUtilisation)} | ${fmt(s.servedRequestsPerS)} | ${fmt(s.meanResponseS)} |`;
  for (const name of TRACES) {
    const trace = await loadTrace(name);
    for (const [high, low] of factors) {
      const result = runSimulation(trace, cluster, settingsWith({ strategies: ['mps-injector'], placementOverrides: { threadCeilingFactor: { high, low } } }));
      const isDefault = high === placementDefaults.threadCeilingFactor.high && low === placementDefaults.threadCeilingFactor.low;
      lines.push(row(name, `${high}x / ${low}x${isDefault ? ' (default)' : ''}`, summarizeSimulation(result).strategies[0]));
    }
    const c = cases[`${name}@h100-4x8`];
    lines.push(row(name, 'time-slicing (4 replicas)', c.by('time-slicing')));
    if (name === 'llm') lines.push(row(name, 'time-slicing (2 replicas)', llmTwoReplicas.by('time-slicing')));
  }
  log('simulated the MPS-limit rows');
  return lines.join('\n');
}

function llmPackingBlock() {
  const header = ['Strategy (llm on h100-4x8)', 'Servers per GPU in use', 'Asked compute per GPU in use', 'Memory limits per GPU in use', 'SM utilisation', 'Served / offered'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  const c = cases['llm@h100-4x8'];
  for (const name of ['mps-injector', 'metrics-only']) {
    const run = c.result.runs.find((r) => r.strategy === name);
    const hours = (pick) => run.placements.reduce((sum, p) => sum + (pick(p) ?? 0) * (p.endS - p.startS), 0) / 3600;
    const s = c.by(name);
    lines.push(
      `| ${[
        name,
        fmt(run.admittedPodHours / run.gpuHours),
        `${fmt(hours((p) => p.threadPercent) / run.gpuHours, 0)} %`,
        `${fmt(hours((p) => p.memoryLimitMiB) / run.gpuHours / 1024, 1)} GiB`,
        pct(s.meanSmUtilisation),
        pct(s.servedShare),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function targetsBlock() {
  const rows = [];
  const all = [...Object.values(cases), llmTwoReplicas, ...sameLoad];
  const label = (c) => `${c.trace} on ${c.cluster}${c.replicas !== 4 ? ` (${c.replicas} replicas)` : ''}`;

  const highChecks = all.map((c) => ({ c, mps: c.by('mps-injector').p95SlowdownHigh, ts: c.by('time-slicing').p95SlowdownHigh }));
  const highMisses = highChecks.filter((h) => h.mps !== null && h.ts !== null && h.mps > h.ts);
  rows.push([
    'high-priority p95 slowdown <= time-slicing on every trace',
    highChecks.map((h) => `${label(h.c)}: ${fmt(h.mps)} vs ${fmt(h.ts)}`).join('; '),
    highMisses.length === 0 ? 'met' : `**missed** on ${highMisses.length} of ${highChecks.length} (${highMisses.map((h) => `${label(h.c)} by ${fmt(h.mps - h.ts, 3)}`).join(', ')})`,
  ]);

  const gpuChecks = sameLoad.map((c) => {
    const mps = c.by('mps-injector').gpuHours;
    const es = c.by('equal-split').gpuHours;
    return { c, fewer: es > 0 ? (es - mps) / es : null };
  });
  const shipped = gpuChecks.filter((g) => g.c.replicas === 4);
  rows.push([
    'same admitted load (replica-sized, h100-8x8): GPU-hours >= 25 % below equal-split',
    gpuChecks.map((g) => `${g.c.base}${g.c.replicas !== 4 ? ` (${g.c.replicas} replicas)` : ''}: ${g.fewer === null ? 'n/a' : `${(g.fewer * 100).toFixed(1)} % fewer`}`).join('; '),
    [
      `${yes(shipped.every((g) => g.fewer !== null && g.fewer >= 0.25))} on ${shipped.map((g) => g.c.base).join(', ')} (4 replicas)`,
      ...gpuChecks.filter((g) => g.c.replicas !== 4).map((g) => `${yes(g.fewer !== null && g.fewer >= 0.25)} on ${g.c.base} (${g.c.replicas} replicas: no pod of it fits one of 4)`),
    ].join('; '),
  ]);

  const overcommits = all.map((c) => c.by('mps-injector').overcommitEvents);
  rows.push(['0 memory over-commits (mps-injector)', `${overcommits.reduce((a, b) => a + b, 0)} events in ${all.length} runs`, yes(overcommits.every((n) => n === 0))]);

  const lowChecks = all.filter((c) => c.by('mps-injector').p95SlowdownLow !== null);
  const lowWorse = lowChecks.filter((c) => c.by('mps-injector').p95SlowdownLow > c.before.p95SlowdownLow);
  rows.push([
    'low-priority p95 slowdown reported and not worse than before the high-priority budget',
    lowChecks.map((c) => `${label(c)}: ${fmt(c.before.p95SlowdownLow)} -> ${fmt(c.by('mps-injector').p95SlowdownLow)}`).join('; '),
    lowWorse.length === 0 ? 'met' : `**missed** on ${lowWorse.map(label).join(', ')}`,
  ]);

  for (const c of [cases['llm@h100-4x8'], llmTwoReplicas]) {
    const mps = c.by('mps-injector');
    const ts = c.by('time-slicing');
    const es = c.by('equal-split');
    const where = `llm on h100-4x8, baselines at ${c.replicas} replicas`;
    rows.push([
      `${where}: served requests/s above time-slicing and equal-split`,
      `${fmt(mps.servedRequestsPerS)} vs ${fmt(ts.servedRequestsPerS)} and ${fmt(es.servedRequestsPerS)}`,
      yes(mps.servedRequestsPerS > ts.servedRequestsPerS && mps.servedRequestsPerS > es.servedRequestsPerS),
    ]);
    const esResponse = es.meanResponseS === null ? 'n/a (admits no pod)' : `${fmt(es.meanResponseS)} s`;
    rows.push([
      `${where}: mean response time below time-slicing and equal-split`,
      `${fmt(mps.meanResponseS)} s vs ${fmt(ts.meanResponseS)} s and ${esResponse}`,
      yes(mps.meanResponseS < ts.meanResponseS && (es.meanResponseS === null || mps.meanResponseS < es.meanResponseS)),
    ]);
  }
  const llm = cases['llm@h100-4x8'].by('mps-injector');
  rows.push(['llm: mean SM utilisation of GPUs in use >= 89 %', pct(llm.meanSmUtilisation), yes(llm.meanSmUtilisation >= 0.89)]);
  rows.push(['llm: mean memory utilisation of GPUs in use >= 60 %', pct(llm.meanMemoryUtilisation), yes(llm.meanMemoryUtilisation >= 0.6)]);
  rows.push(['llm: 0 over-commits', String(llm.overcommitEvents), yes(llm.overcommitEvents === 0)]);

  return ['| Target | Figures | Result |', '| --- | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const blocks = {
  'results-h100-4x8': resultsBlock('h100-4x8'),
  'results-h100-8x8': resultsBlock('h100-8x8'),
  'llm-two-replicas': llmReplicasBlock(),
  'same-load': sameLoadBlock(),
  'llm-packing': llmPackingBlock(),
  'priority-budget': budgetBlock(),
  'metrics-lag': await lagBlock(),
  'thread-ceiling': await ceilingBlock(),
  targets: targetsBlock(),
};
// The README introduces the table in its own words: the block is the table without its heading.
const readmeBlocks = { 'readme-burst': renderMarkdownTable(cases['burst@h100-4x8'].summary).split('\n').slice(2).join('\n') };

function replaceBlocks(file, values) {
  const text = readFileSync(file, 'utf8');
  let out = text;
  const missing = [];
  for (const [name, body] of Object.entries(values)) {
    const block = new RegExp(`(<!-- simulation:${name}:start[^\\n]*-->\\n)(?:[\\s\\S]*?\\n)?(<!-- simulation:${name}:end -->)`);
    if (!block.test(out)) {
      missing.push(name);
      continue;
    }
    out = out.replace(block, (_m, open, close) => `${open}${body}\n${close}`);
  }
  if (missing.length > 0) throw new Error(`${path.relative(repoRoot, file)} lacks the markers of ${missing.join(', ')}; add "<!-- simulation:NAME:start (generated by scripts/simulation-doc.mjs; do not edit) -->" and "<!-- simulation:NAME:end -->" lines`);
  if (out !== text) writeFileSync(file, out);
  return out !== text;
}

if (process.argv.includes('--write')) {
  for (const [file, values] of [
    [path.join(repoRoot, 'docs', 'simulation.md'), blocks],
    [path.join(repoRoot, 'README.md'), readmeBlocks],
  ]) {
    log(`${replaceBlocks(file, values) ? 'updated' : 'unchanged'} ${path.relative(repoRoot, file)}`);
  }
  const imgDir = path.join(repoRoot, 'docs', 'img');
  mkdirSync(imgDir, { recursive: true });
  for (const trace of TRACES) {
    try {
      writeFileSync(path.join(imgDir, `simulation-${trace}.svg`), await renderChartSvg(buildChartSpec(cases[`${trace}@h100-4x8`].result)));
    } catch (err) {
      if (!(err instanceof ChartLibraryMissingError)) throw err;
      log(`charts not written: ${err.message}`);
      break;
    }
  }
} else {
  for (const [name, body] of Object.entries({ ...blocks, ...readmeBlocks })) process.stdout.write(`<!-- ${name} -->\n${body}\n\n`);
}
