/**
 * dcgm-exporter text exposition -> GpuSample[]. Pure: no I/O.
 *
 * The label syntax (quoting, escapes) is read by the `parse-prometheus-text-format`
 * package. A bad line must not lose the rest of a scrape, and that parser throws on the
 * first bad line of its input, so every line is judged on its own: the line is cut into
 * name, label block, value and timestamp by position, and each distinct label block is
 * handed to the package once (a scrape repeats the same label block in every metric
 * family, so this is also what keeps a 1,000-node scrape fast). See ADR 0003.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { GpuSample } from './inventory.js';
import { collectGpuSamples, type DcgmSeries } from './collectGpuSamples.js';
import { DcgmLabel, exporterPodLabels, isDcgmBlank } from './dcgmNames.js';

export interface ParseDcgmTextOptions {
  /** When the text was scraped (epoch ms): the sample time of series without a timestamp. */
  scrapedAtMs: number;
  /** Node of the scrape target. It beats the exporter's host label, which is the exporter pod's name when NODE_NAME is unset. */
  node?: string;
}

export interface DcgmTextParseResult {
  gpus: GpuSample[];
  /** Lines skipped: malformed, non-finite or blank values, duplicate series. */
  skippedLines: number;
  /** One sentence per kind of trouble met, with its first example and what to check. */
  problems: string[];
}

export interface ExpositionSeriesResult {
  series: DcgmSeries[];
  skippedLines: number;
  problems: string[];
}

/** Host labels of dcgm-exporter, released versions first. */
export const exporterNodeLabels: readonly string[] = [DcgmLabel.HostnameUpper, DcgmLabel.HostnameLower];

/** Parse a dcgm-exporter /metrics text into one sample per GPU. */
export function parseDcgmText(text: string, opts: ParseDcgmTextOptions): DcgmTextParseResult {
  const read = readExpositionSeries(text);
  const collected = collectGpuSamples(read.series, {
    ...(opts.node ? { node: opts.node } : {}),
    nodeLabels: exporterNodeLabels,
    podLabels: [exporterPodLabels],
    fallbackTimeMs: opts.scrapedAtMs,
  });
  return {
    gpus: collected.gpus,
    skippedLines: read.skippedLines,
    problems: [...read.problems, ...collected.problems],
  };
}

const SkipKind = {
  Malformed: 'malformed',
  NonFinite: 'non-finite',
  Blank: 'blank',
  Duplicate: 'duplicate',
} as const;
type SkipKind = (typeof SkipKind)[keyof typeof SkipKind];

const skipAdvice: Record<SkipKind, string> = {
  malformed: 'not valid Prometheus text; check the exporter or the dump file',
  'non-finite': 'the exporter had no finite reading (NaN/Inf)',
  blank: 'DCGM reported a blank value (field not supported or not yet sampled)',
  duplicate: 'the same series appears more than once (the first was kept); check for a doubled or concatenated scrape',
};

interface LabelBlock {
  labels: Readonly<Record<string, string>>;
  /** Order-independent identity of the label set, for duplicate detection. */
  identity: string;
}

const FINITE_NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE_NUMBER = /^(?:[+-]?inf(?:inity)?|nan)$/i;
const TIMESTAMP = /^-?\d+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const EXCERPT_CHARS = 100;

const isNameStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 58;
const isNameChar = (c: number): boolean => isNameStart(c) || (c >= 48 && c <= 57);
const isBlankChar = (c: number): boolean => c === 32 || c === 9;

/** Read a label block such as `{gpu="0",UUID="GPU-..."}` with the package; null when it is not valid. */
function readLabelBlock(block: string): LabelBlock | null {
  let families;
  try {
    families = parsePrometheusTextFormat(`m${block} 0\n`);
  } catch {
    return null;
  }
  const sample = families.length === 1 ? families[0]?.metrics : undefined;
  // A block whose quotes never close swallows the value: the package then reports no value.
  if (sample?.length !== 1 || sample[0]?.value !== '0' || sample[0].timestamp_ms !== undefined) return null;
  const labels = sample[0].labels ?? {};
  const names = Object.keys(labels);
  for (const name of names) if (!LABEL_NAME.test(name)) return null;
  names.sort();
  const identity = names.map((n) => `${n}\u0000${labels[n]}`).join('\u0001');
  return { labels, identity };
}

/** `# HELP` / `# TYPE` lines are judged by the package; other comments are ignored. */
function metadataLineIsValid(line: string): boolean {
  try {
    parsePrometheusTextFormat(`${line}\n`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Read every sample line of an exposition into series. Only DCGM_* families are returned;
 * other valid lines are ignored, bad lines of any family are skipped and counted.
 */
export function readExpositionSeries(text: string): ExpositionSeriesResult {
  const series: DcgmSeries[] = [];
  const blocks = new Map<string, LabelBlock | null>();
  const seen = new Set<string>();
  const skipped = new Map<SkipKind, { count: number; firstLine: number; excerpt: string }>();
  let skippedLines = 0;

  const skip = (kind: SkipKind, lineNumber: number, line: string): void => {
    skippedLines++;
    const entry = skipped.get(kind);
    if (entry) entry.count++;
    else skipped.set(kind, { count: 1, firstLine: lineNumber, excerpt: line.length > EXCERPT_CHARS ? `${line.slice(0, EXCERPT_CHARS)}...` : line });
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line.length === 0) continue;
    const lineNumber = i + 1;
    if (line.charCodeAt(0) === 35 /* # */) {
      if ((line.startsWith('# HELP ') || line.startsWith('# TYPE ')) && !metadataLineIsValid(line)) skip(SkipKind.Malformed, lineNumber, line);
      continue;
    }

    // Metric name.
    let at = 0;
    if (!isNameStart(line.charCodeAt(0))) {
      skip(SkipKind.Malformed, lineNumber, line);
      continue;
    }
    while (at < line.length && isNameChar(line.charCodeAt(at))) at++;
    const name = line.slice(0, at);
    while (at < line.length && isBlankChar(line.charCodeAt(at))) at++;

    // Label block: from "{" to the last "}" of the line (value and timestamp hold none).
    let block = '';
    if (line.charCodeAt(at) === 123 /* { */) {
      const close = line.lastIndexOf('}');
      if (close < at) {
        skip(SkipKind.Malformed, lineNumber, line);
        continue;
      }
      block = line.slice(at, close + 1);
      at = close + 1;
    } else if (at < line.length && at === name.length) {
      // The name ran into a character that is neither a name character, a blank nor "{".
      skip(SkipKind.Malformed, lineNumber, line);
      continue;
    }

    // Value and optional timestamp.
    const rest = line.slice(at).trim();
    const gap = rest.search(/[ \t]/);
    const valueText = gap === -1 ? rest : rest.slice(0, gap);
    const timestampText = gap === -1 ? '' : rest.slice(gap).trim();
    const finite = FINITE_NUMBER.test(valueText);
    if ((!finite && !NON_FINITE_NUMBER.test(valueText)) || (timestampText !== '' && !TIMESTAMP.test(timestampText))) {
      skip(SkipKind.Malformed, lineNumber, line);
      continue;
    }

    let labelBlock = blocks.get(block);
    if (labelBlock === undefined) {
      labelBlock = block === '' ? { labels: {}, identity: '' } : readLabelBlock(block);
      blocks.set(block, labelBlock);
    }
    if (labelBlock === null) {
      skip(SkipKind.Malformed, lineNumber, line);
      continue;
    }

    // Valid line. Only DCGM families matter beyond this point.
    if (!name.startsWith('DCGM_')) continue;
    if (!finite) {
      skip(SkipKind.NonFinite, lineNumber, line);
      continue;
    }
    const value = Number(valueText);
    if (isDcgmBlank(value)) {
      skip(SkipKind.Blank, lineNumber, line);
      continue;
    }
    const identity = `${name}\u0002${labelBlock.identity}`;
    if (seen.has(identity)) {
      skip(SkipKind.Duplicate, lineNumber, line);
      continue;
    }
    seen.add(identity);
    series.push({ name, labels: labelBlock.labels, value, timestampMs: timestampText === '' ? null : Number(timestampText) });
  }

  const problems: string[] = [];
  for (const [kind, entry] of skipped) {
    problems.push(`skipped ${entry.count} ${kind} line(s), first at line ${entry.firstLine} (${entry.excerpt}): ${skipAdvice[kind]}`);
  }
  return { series, skippedLines, problems };
}
