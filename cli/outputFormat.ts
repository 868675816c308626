/**
 * How the operator's commands print: kubectl-style tables, and one `-o` flag for YAML and JSON.
 */
import { Option } from 'commander';
import { stringify } from 'yaml';

export const OutputFormat = { Table: 'table', Wide: 'wide', Yaml: 'yaml', Json: 'json' } as const;
export type OutputFormat = (typeof OutputFormat)[keyof typeof OutputFormat];

/** The `-o` option of a command that prints text by default: yaml and json, and wide where the table has more columns. */
export function textOutputOption(opts: { wide: boolean }): Option {
  const choices: string[] = opts.wide ? [OutputFormat.Wide, OutputFormat.Yaml, OutputFormat.Json] : [OutputFormat.Yaml, OutputFormat.Json];
  return new Option('-o, --output <format>', `output format: ${choices.join(', ')} (default: text)`).choices(choices);
}

/** The `-o` option of a command that prints Kubernetes documents: yaml (default) or json. */
export function documentOutputOption(): Option {
  return new Option('-o, --output <format>', 'output format: yaml or json').choices([OutputFormat.Yaml, OutputFormat.Json]).default(OutputFormat.Yaml);
}

/** Columns padded to their widest cell, three spaces apart, as kubectl prints them. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

/** A document as YAML or JSON text, ending in a newline. */
export function formatDocument(value: unknown, format: 'yaml' | 'json'): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 });
}

/** An age as kubectl prints it: 45s, 3m, 2h, 5d. */
export function formatAge(seconds: number): string {
  if (!Number.isFinite(seconds)) return '<none>';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
