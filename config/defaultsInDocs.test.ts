/**
 * One source for every default: the configuration schema. The chart's values are checked
 * against it in charts/values.test.ts and the README's values table is generated from them;
 * this checks the defaults the README's prose quotes beside a setting's name.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultConfig } from './schema.js';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

function numericLeaves(value: unknown, prefix: string, out: Map<string, number>): Map<string, number> {
  if (typeof value === 'number') out.set(prefix, value);
  else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) numericLeaves(child, prefix === '' ? key : `${prefix}.${key}`, out);
  }
  return out;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('every default the README quotes beside a setting is the schema default', () => {
  const quoted: { setting: string; quoted: number; schema: number }[] = [];
  for (const [setting, schemaDefault] of numericLeaves(defaultConfig(), '', new Map())) {
    // "`placement.maxThreadPercentSum` (200 %)", "(`placement.observeAfterRunningSeconds`, 300 s)", "`server.drainDelaySeconds`\n(5)"
    const pattern = new RegExp(`\`(?:config\\.)?${escape(setting)}\`\\)?(?:,|\\s)*\\(?\\s*(\\d+(?:\\.\\d+)?)\\b`, 'g');
    for (const match of readme.matchAll(pattern)) quoted.push({ setting, quoted: Number(match[1]), schema: schemaDefault });
  }
  expect(quoted.length).toBeGreaterThanOrEqual(3);
  for (const q of quoted) expect(q).toEqual({ ...q, quoted: q.schema });
});
