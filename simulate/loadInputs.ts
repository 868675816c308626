/**
 * The simulator's file edge: finds the shipped traces and clusters, reads trace and cluster
 * files, writes charts. Everything it reads goes through the pure parsers.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseClusterText } from './cluster.js';
import type { ClusterSpec } from './cluster.js';
import { parseTraceText } from './trace.js';
import type { Trace } from './trace.js';

export const ShippedKind = { Traces: 'traces', Clusters: 'clusters' } as const;
export type ShippedKind = (typeof ShippedKind)[keyof typeof ShippedKind];

/** A trace or cluster argument that names nothing usable; the message says what would work. */
export class SimulationInputError extends Error {
  override readonly name = 'SimulationInputError';
}

/**
 * The folder of shipped traces or clusters: `simulate/<kind>` in the package root, found by
 * walking up from this module (it runs from `simulate/` in the source tree and from
 * `dist/simulate/` when built).
 */
export function shippedDirectory(kind: ShippedKind): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'simulate', kind);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Names (file names without .json) of the shipped traces or clusters, sorted. */
export function shippedNames(kind: ShippedKind): string[] {
  const dir = shippedDirectory(kind);
  if (dir === null) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => file.slice(0, -'.json'.length))
    .sort();
}

const looksLikePath = (text: string): boolean => text.includes('/') || text.includes('\\') || text.endsWith('.json');

/** A shipped name or a file path, to the file to read. */
export function resolveInput(kind: ShippedKind, nameOrPath: string): string {
  if (looksLikePath(nameOrPath)) return resolve(nameOrPath);
  const dir = shippedDirectory(kind);
  const file = dir === null ? null : join(dir, `${nameOrPath}.json`);
  if (file === null || !existsSync(file)) {
    const names = shippedNames(kind);
    const what = kind === ShippedKind.Traces ? 'trace' : 'cluster';
    throw new SimulationInputError(
      `no shipped ${what} named "${nameOrPath}"; use one of ${names.length > 0 ? names.join(', ') : '(none found next to the package)'} or pass the path of a ${what} JSON file`,
    );
  }
  return file;
}

/** "all", or a comma list of names and paths, to the list of trace arguments. */
export function expandTraceList(argument: string): string[] {
  const items = argument
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw new SimulationInputError('--trace is empty; pass a shipped trace name, a path, a comma list of them, or "all"');
  return items.flatMap((item) => (item === 'all' ? shippedNames(ShippedKind.Traces) : [item]));
}

async function readInput(kind: ShippedKind, nameOrPath: string): Promise<{ text: string; file: string }> {
  const file = resolveInput(kind, nameOrPath);
  try {
    return { text: await readFile(file, 'utf8'), file };
  } catch (err) {
    throw new SimulationInputError(`cannot read ${file}: ${(err as Error).message}; check the path and its permissions`);
  }
}

export async function loadTrace(nameOrPath: string): Promise<Trace> {
  const { text, file } = await readInput(ShippedKind.Traces, nameOrPath);
  return parseTraceText(text, file);
}

export async function loadCluster(nameOrPath: string): Promise<ClusterSpec> {
  const { text, file } = await readInput(ShippedKind.Clusters, nameOrPath);
  return parseClusterText(text, file);
}

/** Write a text file, creating its folder. */
export async function writeTextFile(file: string, text: string): Promise<void> {
  await mkdir(dirname(resolve(file)), { recursive: true });
  await writeFile(file, text, 'utf8');
}
