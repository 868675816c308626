import { jest } from '@jest/globals';
import { Command, CommanderError } from 'commander';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { defaultConfig } from '../config/schema.js';
import { CliError } from './cliError.js';
import { registerSimulateCommand } from './simulateCommand.js';

interface Captured {
  stdout: string;
  stderr: string;
  errors: string;
}

async function run(args: string[]): Promise<Captured> {
  const captured: Captured = { stdout: '', stderr: '', errors: '' };
  const program = new Command('mps-injector')
    .exitOverride()
    .configureOutput({ writeErr: (text) => (captured.errors += text), writeOut: (text) => (captured.stdout += text) });
  registerSimulateCommand(program);
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    captured.stdout += String(chunk);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    captured.stderr += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'mps-injector', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return captured;
}

/** Runs a command that must fail; returns the error and what commander wrote to stderr. */
async function failure(args: string[]): Promise<{ error: CommanderError | CliError; errors: string; message: string }> {
  let errors = '';
  const program = new Command('mps-injector').exitOverride().configureOutput({ writeErr: (text) => (errors += text) });
  registerSimulateCommand(program);
  try {
    await program.parseAsync(['node', 'mps-injector', ...args]);
  } catch (error) {
    if (error instanceof CommanderError || error instanceof CliError) return { error, errors, message: `${errors}${error.message}` };
    throw error;
  }
  throw new Error(`expected ${args.join(' ')} to fail`);
}

describe('mps-injector simulate', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'simulate-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('-o yaml and -o json print the same figures as --json, its alias', async () => {
    const args = ['simulate', '--trace', 'steady', '--cluster', 'h100-4x8', '--strategies', 'mps-injector'];
    // Place times are wall-clock measurements: the rest is deterministic.
    const figures = (text: string): { traces: { strategies: { admitted: number }[] }[] } =>
      JSON.parse(JSON.stringify(parse(text)), (key: string, value: unknown) => (key.startsWith('placeTime') ? undefined : value)) as { traces: { strategies: { admitted: number }[] }[] };
    const alias = figures((await run([...args, '--json'])).stdout);
    const json = figures((await run([...args, '-o', 'json'])).stdout);
    const yaml = figures((await run([...args, '-o', 'yaml'])).stdout);
    expect(json).toEqual(alias);
    expect(yaml).toEqual(alias);
    expect(alias.traces[0]?.strategies[0]?.admitted).toBeGreaterThan(0);
    expect((await failure([...args, '-o', 'table'])).message).toMatch(/Allowed choices are yaml, json/);
  });

  it('--json prints the figures per trace and strategy', async () => {
    const { stdout } = await run(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--json', '--strategies', 'mps-injector,metrics-only']);
    const report = JSON.parse(stdout) as { cluster: string; traces: { trace: string; strategies: Record<string, unknown>[] }[] };
    expect(report.cluster).toBe('h100-4x8');
    expect(report.traces.map((t) => t.trace)).toEqual(['burst']);
    const [mps, metricsOnly] = report.traces[0]!.strategies;
    for (const s of [mps!, metricsOnly!]) {
      for (const key of ['admitted', 'refused', 'overcommitEvents', 'gpuHours', 'p95Slowdown', 'p95SlowdownHigh']) expect(s).toHaveProperty(key);
      expect((s.admitted as number) + (s.refused as number)).toBe(248);
    }
    expect(mps).toMatchObject({ strategy: 'mps-injector', overcommitEvents: 0 });
    expect(metricsOnly!.strategy).toBe('metrics-only');
    expect(metricsOnly!.overcommitEvents).toBeGreaterThan(0);
  });

  it('prints a Markdown table by default and writes an SVG per trace with --out', async () => {
    const { stdout, stderr } = await run(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--out', dir, '--strategies', 'equal-split,time-slicing']);
    expect(stdout).toContain('### burst on h100-4x8');
    expect(stdout).toMatch(/^\| equal-split \| 128 \| 120 \|/m);
    expect(stdout).toMatch(/^\| time-slicing \|/m);
    const svg = await readFile(join(dir, 'simulation-burst.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('>equal-split<');
    expect(stderr).toContain('simulation-burst.svg');
  });

  it('generate-trace writes the same file as the shipped trace for its seed, and another for another seed', async () => {
    const file = join(dir, 'burst.json');
    await run(['simulate', 'generate-trace', '--kind', 'burst', '--seed', '1', '--out', file]);
    const shipped = await readFile(fileURLToPath(new URL('../simulate/traces/burst.json', import.meta.url)), 'utf8');
    expect(await readFile(file, 'utf8')).toBe(shipped);
    const { stdout } = await run(['simulate', 'generate-trace', '--kind', 'burst', '--seed', '2']);
    expect(stdout).not.toBe(shipped);
    expect(JSON.parse(stdout).generator).toEqual({ kind: 'burst', seed: 2, version: 1 });
  });

  it('the thread budget flags start from the configuration defaults, and the help shows them', async () => {
    let help = '';
    const program = new Command('mps-injector').exitOverride().configureOutput({ writeOut: (text) => (help += text), writeErr: (text) => (help += text) });
    registerSimulateCommand(program);
    await expect(program.parseAsync(['node', 'mps-injector', 'simulate', '--help'])).rejects.toBeInstanceOf(CommanderError);
    const { maxThreadPercentSum, maxHighThreadPercentSum } = defaultConfig().placement;
    expect(help.replace(/\s+/g, ' ')).toMatch(new RegExp(`--max-thread-percent-sum <n> ((?! --).)*\\(default: ${maxThreadPercentSum}\\)`));
    expect(help.replace(/\s+/g, ' ')).toMatch(new RegExp(`--max-high-thread-percent-sum <n> ((?! --).)*\\(default: ${maxHighThreadPercentSum}\\)`));

    const admitted = async (extra: string[]): Promise<number> => {
      const { stdout } = await run(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--json', '--strategies', 'mps-injector', ...extra]);
      return (JSON.parse(stdout) as { traces: { strategies: { admitted: number }[] }[] }).traces[0]!.strategies[0]!.admitted;
    };
    // 200 high-priority pods at 20% in 10 s: at most 5 per GPU under the default high budget, 10 when it is raised.
    expect(await admitted([])).toBeLessThan(248);
    expect(await admitted(['--max-high-thread-percent-sum', '200'])).toBe(248);
  });

  it('the MPS limit flags start from the configuration defaults, reach the product, and refuse a factor below 1', async () => {
    let help = '';
    const program = new Command('mps-injector').exitOverride().configureOutput({ writeOut: (text) => (help += text), writeErr: (text) => (help += text) });
    registerSimulateCommand(program);
    await expect(program.parseAsync(['node', 'mps-injector', 'simulate', '--help'])).rejects.toBeInstanceOf(CommanderError);
    const { high, low } = defaultConfig().placement.threadCeilingFactor;
    expect(help.replace(/\s+/g, ' ')).toMatch(new RegExp(`--thread-ceiling-high <factor> ((?! --).)*\\(default: ${high}\\)`));
    expect(help.replace(/\s+/g, ' ')).toMatch(new RegExp(`--thread-ceiling-low <factor> ((?! --).)*\\(default: ${low}\\)`));

    const p95High = async (extra: string[]): Promise<number> => {
      const { stdout } = await run(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--json', '--strategies', 'mps-injector', ...extra]);
      return (JSON.parse(stdout) as { traces: { strategies: { p95SlowdownHigh: number }[] }[] }).traces[0]!.strategies[0]!.p95SlowdownHigh;
    };
    expect(await p95High(['--thread-ceiling-high', '1.5'])).toBeLessThan(await p95High([]));
    expect((await failure(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--thread-ceiling-low', '0.5'])).message).toMatch(/--thread-ceiling-low/);
  });

  it('--replica-sized with "all" skips a trace with no pod small enough for a replica, and says so', async () => {
    const { stdout, stderr } = await run(['simulate', '--trace', 'all', '--cluster', 'h100-8x8', '--replica-sized', '--json', '--strategies', 'equal-split']);
    expect(stderr).toContain('skipped llm: no pod fits one of 4 replicas of a GPU; run it alone with a lower --replicas');
    const names = (JSON.parse(stdout) as { traces: { trace: string }[] }).traces.map((t) => t.trace);
    expect(names).toEqual(['burst-replica-sized', 'diurnal-replica-sized', 'steady-replica-sized']);
    const alone = await failure(['simulate', '--trace', 'llm', '--cluster', 'h100-8x8', '--replica-sized']);
    expect(alone.message).toMatch(/no pod of trace llm fits one of 4 replicas of any GPU; lower --replicas/);
  });

  it('explains missing or unknown inputs (CliError, exit code 2) and bad option values (usage errors)', async () => {
    const missing = await failure(['simulate', '--trace', 'burst']);
    expect(missing.error).toBeInstanceOf(CliError);
    expect(missing.error.exitCode).toBe(2);
    expect(missing.message).toMatch(/simulate needs --trace and --cluster/);
    const unknown = await failure(['simulate', '--trace', 'bursty', '--cluster', 'h100-4x8']);
    expect(unknown.error).toBeInstanceOf(CliError);
    expect(unknown.message).toMatch(/no shipped trace named "bursty"; use one of burst, diurnal, llm, steady/);
    const policy = await failure(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--policy', 'random']);
    expect(policy.error).toBeInstanceOf(CommanderError);
    expect(policy.message).toMatch(/Allowed choices are binpack, spread/);
    const strategies = await failure(['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--strategies', 'mps,equal-split']);
    expect(strategies.message).toMatch(/unknown strategy "mps"; choose from mps-injector, metrics-only, equal-split, time-slicing/);
    const kind = await failure(['simulate', 'generate-trace', '--kind', 'weekly']);
    expect(kind.error).toBeInstanceOf(CliError);
    expect(kind.message).toMatch(/--kind steady\|burst\|diurnal\|llm \(got "weekly"\)/);
  });
});
