/**
 * dcgm-exporter text exposition -> GpuSample[]. Pure: no I/O.
 *
 * The label syntax (quoting, escapes) is read by the `parse-prometheus-text-format`
 * package. A bad line must not lose the rest of a scrape, and that parser throws on the
 * first bad line of its input, so every line is judged on its own: the line is cut into
 * name, label block, value and timestamp by position, and each distinct label block is
 * handed to the package once (a scrape repeats the same label block in every metric
 * family). A DcgmTextParser also remembers label blocks from one scrape to the next, which
 * is what a poller sees: the same blocks every time. See ADR 0003.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { GpuSample } from './inventory.js';
import { GpuSampleCollector, type SeriesLabels } from './collectGpuSamples.js';
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

/** Receives each valid DCGM series of an exposition, in text order. */
type SeriesSink = (name: string, labels: SeriesLabels, value: number, timestampMs: number | null) => void;

interface ExpositionReadResult {
  skippedLines: number;
  problems: string[];
}

/** Host labels of dcgm-exporter, released versions first. */
export const exporterNodeLabels: readonly string[] = [DcgmLabel.HostnameUpper, DcgmLabel.HostnameLower];

/**
 * Parses scrapes of one source again and again (a poller), remembering the label blocks
 * it has read. Blocks not seen in the latest scrape are forgotten, so memory follows the
 * size of one scrape.
 */
export class DcgmTextParser {
  private readonly cache = new LabelBlockCache();

  parse(text: string, opts: ParseDcgmTextOptions): DcgmTextParseResult {
    const collector = new GpuSampleCollector({
      ...(opts.node ? { node: opts.node } : {}),
      nodeLabels: exporterNodeLabels,
      podLabels: [exporterPodLabels],
      fallbackTimeMs: opts.scrapedAtMs,
    });
    const read = readExposition(text, (name, labels, value, timestampMs) => collector.add(name, labels, value, timestampMs), this.cache);
    const collected = collector.finish();
    return {
      gpus: collected.gpus,
      skippedLines: read.skippedLines,
      problems: [...read.problems, ...collected.problems],
    };
  }
}

/** Parse a dcgm-exporter /metrics text into one sample per GPU (one-off; pollers keep a DcgmTextParser). */
export function parseDcgmText(text: string, opts: ParseDcgmTextOptions): DcgmTextParseResult {
  return new DcgmTextParser().parse(text, opts);
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

/** One distinct label set, shared by every line that carries it. */
interface LabelSet {
  labels: SeriesLabels;
  /** Order-independent text of the label set. */
  identity: string;
  /** Metric names read with this label set in the current scrape, for duplicate detection (a handful). */
  names: string[];
  seenInScrape: number;
}

/** A label block as written, what it reads as, and the block that followed it last time. */
interface BlockEntry {
  text: string;
  set: LabelSet | null;
  next: BlockEntry | null;
  seenInScrape: number;
}

const FINITE_NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE_NUMBER = /^(?:[+-]?inf(?:inity)?|nan)$/i;
const TIMESTAMP = /^-?\d+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const EXCERPT_CHARS = 100;
const MAX_METADATA_LINES = 10_000;

const isNameStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 58;
const isNameChar = (c: number): boolean => isNameStart(c) || (c >= 48 && c <= 57);
const isBlankChar = (c: number): boolean => c === 32 || c === 9;
/** Blanks and the carriage return of CRLF text, trimmed from both ends of a line. */
const isSpaceChar = (c: number): boolean => c === 32 || c === 9 || c === 13;

/**
 * A copy of a piece of a larger string. A slice can keep the whole scrape text alive; what
 * outlives a parse (cached keys, messages) is copied.
 */
const detach = (s: string): string => (' ' + s).slice(1);

/** `# HELP` / `# TYPE` lines are judged by the package; other comments are ignored. */
function metadataLineIsValid(line: string): boolean {
  try {
    parsePrometheusTextFormat(`${line}\n`);
    return true;
  } catch {
    return false;
  }
}

/** Label blocks (and metadata lines) already read, by their text. */
class LabelBlockCache {
  private readonly blocks = new Map<string, BlockEntry>();
  private readonly byIdentity = new Map<string, LabelSet>();
  private readonly metadata = new Map<string, boolean>();
  private scrape = 0;
  readonly noLabels: BlockEntry;

  constructor() {
    this.noLabels = { text: '', set: this.readLabelBlock('{}'), next: null, seenInScrape: 0 };
  }

  beginScrape(): number {
    return ++this.scrape;
  }

  /** Forget what the scrape just read did not use, and the per-scrape duplicate state. */
  endScrape(): void {
    for (const [text, entry] of this.blocks) {
      if (entry.seenInScrape !== this.scrape) this.blocks.delete(text);
      else if (entry.next !== null && entry.next.seenInScrape !== this.scrape) entry.next = null;
    }
    for (const [identity, set] of this.byIdentity) {
      if (set.seenInScrape !== this.scrape && set !== this.noLabels.set) this.byIdentity.delete(identity);
      else set.names = [];
    }
    if (this.metadata.size > MAX_METADATA_LINES) this.metadata.clear();
  }

  /** The entry of a block text, `guess` (the block that followed the previous one last time) first. */
  block(text: string, guess: BlockEntry | null): BlockEntry {
    let entry: BlockEntry | undefined = guess !== null && guess.text === text ? guess : this.blocks.get(text);
    if (entry === undefined) {
      const kept = detach(text);
      entry = { text: kept, set: this.readLabelBlock(kept), next: null, seenInScrape: 0 };
      this.blocks.set(kept, entry);
    }
    if (entry.seenInScrape !== this.scrape) {
      entry.seenInScrape = this.scrape;
      if (entry.set !== null) this.touch(entry.set);
    }
    return entry;
  }

  /** Whether a `# HELP` / `# TYPE` line is valid. */
  metadataLine(line: string): boolean {
    let valid = this.metadata.get(line);
    if (valid === undefined) this.metadata.set(detach(line), (valid = metadataLineIsValid(line)));
    return valid;
  }

  touch(set: LabelSet): void {
    if (set.seenInScrape === this.scrape) return;
    set.seenInScrape = this.scrape;
    set.names = [];
  }

  /**
   * Read a label block such as `{gpu="0",UUID="GPU-..."}` with the package; null when it is
   * not valid. Blocks that differ only in label order share one LabelSet.
   */
  private readLabelBlock(block: string): LabelSet | null {
    const labels = labelsOfText(block);
    if (labels === null) return null;
    const names = Object.keys(labels);
    for (const name of names) if (!LABEL_NAME.test(name)) return null;
    names.sort();
    const identity = names.map((n) => `${n}\u0000${labels[n]}`).join('\u0001');
    let set = this.byIdentity.get(identity);
    if (set === undefined) {
      set = { labels, identity, names: [], seenInScrape: 0 };
      this.byIdentity.set(identity, set);
    }
    return set;
  }
}

/** The labels of a label block, read by the package; null when it is not valid. */
function labelsOfText(block: string): Record<string, string> | null {
  let families;
  try {
    families = parsePrometheusTextFormat(`m${block} 0\n`);
  } catch {
    return null;
  }
  const sample = families.length === 1 ? families[0]?.metrics : undefined;
  // A block whose quotes never close swallows the value: the package then reports no value.
  if (sample?.length !== 1 || sample[0]?.value !== '0' || sample[0].timestamp_ms !== undefined) return null;
  return sample[0].labels ?? {};
}

/**
 * Read every sample line of an exposition. Valid DCGM_* series go to `sink`; other valid
 * lines are ignored; bad lines of any family are skipped and counted.
 *
 * Lines are read in place (positions into `text`, no per-line copies). An exposition
 * repeats its label blocks in the same order in every family, so the block that followed
 * the previous line's block last time is tried first (a string comparison) before a
 * lookup (a hash of the whole block).
 */
function readExposition(text: string, sink: SeriesSink, cache: LabelBlockCache = new LabelBlockCache()): ExpositionReadResult {
  const skipped = new Map<SkipKind, { count: number; firstLine: number; excerpt: string }>();
  let skippedLines = 0;
  let lineNumber = 0;
  let lineStart = 0;
  let previousName = '';
  let previousBlock: BlockEntry | null = null;
  cache.beginScrape();

  const skip = (kind: SkipKind, from: number, to: number): void => {
    skippedLines++;
    const entry = skipped.get(kind);
    if (entry) entry.count++;
    else {
      const excerpt = to - from > EXCERPT_CHARS ? `${text.slice(from, from + EXCERPT_CHARS)}...` : text.slice(from, to);
      skipped.set(kind, { count: 1, firstLine: lineNumber, excerpt: detach(excerpt) });
    }
  };

  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let from = lineStart;
    let to = lineEnd;
    lineStart = lineEnd + 1;
    lineNumber++;
    while (from < to && isSpaceChar(text.charCodeAt(from))) from++;
    while (to > from && isSpaceChar(text.charCodeAt(to - 1))) to--;
    if (from === to) continue;

    if (text.charCodeAt(from) === 35 /* # */) {
      if ((text.startsWith('# HELP ', from) || text.startsWith('# TYPE ', from)) && !cache.metadataLine(text.slice(from, to))) {
        skip(SkipKind.Malformed, from, to);
      }
      continue;
    }

    // Metric name.
    if (!isNameStart(text.charCodeAt(from))) {
      skip(SkipKind.Malformed, from, to);
      continue;
    }
    let at = from + 1;
    while (at < to && isNameChar(text.charCodeAt(at))) at++;
    const nameEnd = at;
    while (at < to && isBlankChar(text.charCodeAt(at))) at++;

    // Label block: from "{" to the last "}" of the line (value and timestamp hold none).
    let block = cache.noLabels;
    if (text.charCodeAt(at) === 123 /* { */) {
      const close = text.lastIndexOf('}', to - 1);
      if (close < at) {
        skip(SkipKind.Malformed, from, to);
        continue;
      }
      block = cache.block(text.slice(at, close + 1), previousBlock === null ? null : previousBlock.next);
      if (previousBlock !== null) previousBlock.next = block;
      previousBlock = block;
      at = close + 1;
    } else if (at < to && at === nameEnd) {
      // The name ran into a character that is neither a name character, a blank nor "{".
      skip(SkipKind.Malformed, from, to);
      continue;
    }

    // Value and optional timestamp, separated by blanks.
    while (at < to && isBlankChar(text.charCodeAt(at))) at++;
    const valueStart = at;
    while (at < to && !isBlankChar(text.charCodeAt(at))) at++;
    const valueText = text.slice(valueStart, at);
    while (at < to && isBlankChar(text.charCodeAt(at))) at++;
    const timestampText = text.slice(at, to);
    const finite = FINITE_NUMBER.test(valueText);
    const labelSet = block.set;
    if ((!finite && !NON_FINITE_NUMBER.test(valueText)) || (timestampText !== '' && !TIMESTAMP.test(timestampText)) || labelSet === null) {
      skip(SkipKind.Malformed, from, to);
      continue;
    }

    // Valid line. Only DCGM families matter beyond this point.
    if (!text.startsWith('DCGM_', from)) continue;
    if (!finite) {
      skip(SkipKind.NonFinite, from, to);
      continue;
    }
    const value = Number(valueText);
    if (isDcgmBlank(value)) {
      skip(SkipKind.Blank, from, to);
      continue;
    }
    // Consecutive lines mostly share their family: reuse the name string (its hash is cached).
    const name =
      previousName.length === nameEnd - from && text.startsWith(previousName, from) ? previousName : (previousName = text.slice(from, nameEnd));
    cache.touch(labelSet);
    if (labelSet.names.includes(name)) {
      skip(SkipKind.Duplicate, from, to);
      continue;
    }
    labelSet.names.push(name);
    sink(name, labelSet.labels, value, timestampText === '' ? null : Number(timestampText));
  }
  cache.endScrape();

  const problems: string[] = [];
  for (const [kind, entry] of skipped) {
    problems.push(`skipped ${entry.count} ${kind} line(s), first at line ${entry.firstLine} (${entry.excerpt}): ${skipAdvice[kind]}`);
  }
  return { skippedLines, problems };
}
