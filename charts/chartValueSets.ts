/**
 * The value sets the chart is tested with: the defaults plus every file in
 * charts/mps-injector/ci/ (together they change every option of values.yaml).
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir } from './renderChart.js';

export interface ValueSet {
  name: string;
  /** Values files relative to the repository root; empty for the defaults. */
  valuesFiles: string[];
  /** The set's own values, as written in its file. */
  values: Record<string, unknown>;
}

export const ciDir = path.join(chartDir, 'ci');

export function loadValueSets(): ValueSet[] {
  const files = readdirSync(ciDir)
    .filter((f) => f.endsWith('-values.yaml'))
    .sort();
  return [
    { name: 'defaults', valuesFiles: [], values: {} },
    ...files.map((f) => ({
      name: f.replace(/-values\.yaml$/, ''),
      valuesFiles: [path.join('charts/mps-injector/ci', f)],
      values: (parseYaml(readFileSync(path.join(ciDir, f), 'utf8')) ?? {}) as Record<string, unknown>,
    })),
  ];
}

export function loadDefaultValues(): Record<string, unknown> {
  return parseYaml(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
}
