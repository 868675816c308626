/**
 * dcgm-exporter text exposition -> GpuSample[]. Pure: no I/O.
 *
 * The label syntax (quoting, escapes) is read by the `parse-prometheus-text-format`
 * package. A bad line must not lose the rest of a scrape, and that parser throws on the
 * first bad line of its input, so every line is judged on its own: the line is cut into
 * name, label block, value and timestamp by position, and each distinct label block is
 * handed to the package once (a scrape repeats the same label block in every metric
 * family). A DcgmTextParser also remembers label blocks from one scrape to the next, which
 * is what a poller sees: the same blocks every time. A scrape can be fed in pieces as it
 * arrives (`begin`, `write`, `end`), so a large body is never held whole. See ADR 0003.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { GpuSample, IngestionFaults } from '../domain/inventory.js';
import { GpuSampleCollector, type SeriesLabels } from './collectGpuSamples.js';
import { DcgmLabel, exporterPodLabels, isDcgmBlank } from './dcgmNames.js';

export interface ParseDcgmTextOptions {
  /** When the text was scraped (epoch ms): the sample time of series without a timestamp. */
  scrapedAtMs: number;
  /** When the text arrived (epoch ms): later sample times are clamped to it (default: scrapedAtMs). */
  receivedAtMs?: number;
  /** Node of the scrape target. It beats the exporter's host label, which is the exporter pod's name when NODE_NAME is unset. */
  node?: string;
}

export interface DcgmTextParseResult {
  gpus: GpuSample[];
  /** Lines skipped: malformed, non-finite or blank values, duplicate series. */
  skippedLines: number;
  /** One sentence per kind of trouble met, with its first example and what to check. */
  problems: string[];
  /** GPUs left out as untrustworthy, and sample times clamped to the arrival time. */
  faults: IngestionFaults;
}

/** Receives each valid DCGM series of an exposition, in text order; `shared` when its labels object serves other lines too. */
type SeriesSink = (name: string, labels: SeriesLabels, value: number, timestampMs: number | null, shared: boolean) => void;

interface ExpositionReadResult {
  skippedLines: number;
  problems: string[];
}

/** Host labels of dcgm-exporter, released versions first. */
export const exporterNodeLabels: readonly string[] = [DcgmLabel.HostnameUpper, DcgmLabel.HostnameLower];

/** One scrape being read: text goes in piece by piece, the GPUs come out at the end. */
export interface DcgmTextScrape {
  /** The next piece of the exposition (any split, also inside a line). */
  write(piece: string): void;
  /** No more text: the result. */
  end(): DcgmTextParseResult;
}

/**
 * Parses scrapes of one source again and again (a poller), remembering the label blocks
 * it has read. Blocks not seen in the latest scrape are forgotten, so memory follows the
 * size of one scrape (and at most MAX_CACHED_LABEL_BLOCKS blocks).
 */
export class DcgmTextParser {
  private readonly cache = new LabelBlockCache();
  private scraping = false;

  parse(text: string, opts: ParseDcgmTextOptions): DcgmTextParseResult {
    const scrape = this.begin(opts);
    scrape.write(text);
    return scrape.end();
  }

  /** Start a scrape that arrives in pieces. One at a time per parser; an overlapping one reads without the cache. */
  begin(opts: ParseDcgmTextOptions): DcgmTextScrape {
    const collector = new GpuSampleCollector({
      ...(opts.node ? { node: opts.node } : {}),
      nodeLabels: exporterNodeLabels,
      podLabels: [exporterPodLabels],
      fallbackTimeMs: opts.scrapedAtMs,
      ...(opts.receivedAtMs !== undefined ? { receivedAtMs: opts.receivedAtMs } : {}),
    });
    const ownsCache = !this.scraping;
    this.scraping = true;
    const reader = new ExpositionReader((name, labels, value, timestampMs, shared) => collector.add(name, labels, value, timestampMs, shared), ownsCache ? this.cache : new LabelBlockCache());
    let ended = false;
    return {
      write: (piece) => {
        if (ended) throw new Error('DcgmTextScrape.write after end()');
        reader.write(piece);
      },
      end: () => {
        if (ended) throw new Error('DcgmTextScrape.end called twice');
        ended = true;
        if (ownsCache) this.scraping = false;
        const read = reader.end();
        const collected = collector.finish();
        return {
          gpus: collected.gpus,
          skippedLines: read.skippedLines,
          problems: [...read.problems, ...collected.problems],
          faults: collected.faults,
        };
      },
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
  /** Order-independent hash of the labels (equal label sets, equal hashes). */
  hash: number;
  /**
   * Metric names read with this label set in the current scrape, for duplicate detection: a
   * handful in a list, a set past LIST_NAMES (an exposition may invent any number of names).
   */
  names: string[] | Set<string>;
  seenInScrape: number;
}

/** A label block as written, what it reads as, and the block that followed it last time. */
interface BlockEntry {
  text: string;
  set: LabelSet | null;
  next: BlockEntry | null;
  seenInScrape: number;
  /** false for a block read past the cache's bound: it serves its own line only. */
  cached: boolean;
}

// Each part can match in one way only, so a malformed value is rejected in linear time (a
// `\d+\.?\d*` would try every split of a long digit run: quadratic).
const FINITE_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE_NUMBER = /^(?:[+-]?inf(?:inity)?|nan)$/i;
const TIMESTAMP = /^-?\d+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const EXCERPT_CHARS = 100;
const MAX_METADATA_LINES = 10_000;
/**
 * Label blocks remembered at most. A node's scrape has a few hundred (8 GPUs, a block per GPU
 * and per pod); 1,000 nodes concatenated, 8,000. Past the bound a block is read for its line
 * alone, so memory stays bounded whatever the input: a dump of a million distinct per-pod
 * blocks costs time in proportion, not a million cached blocks.
 */
export const MAX_CACHED_LABEL_BLOCKS = 16_384;
/** Label values longer than this are not worth sharing. */
const MAX_INTERNED_CHARS = 256;
/** Names of a label set kept in a list up to this many; a set past it. */
const LIST_NAMES = 16;

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
  /** Remembered label sets by hash: one, or several whose hashes collide. */
  private readonly byHash = new Map<number, LabelSet | LabelSet[]>();
  /** Label values read in this scrape, so that blocks repeating a value (a GPU's UUID in each pod's block) share one string. */
  private readonly values = new Map<string, string>();
  private readonly metadata = new Map<string, boolean>();
  private scrape = 0;
  readonly noLabels: BlockEntry;

  constructor() {
    this.noLabels = { text: '', set: this.readLabelBlock('{}', true), next: null, seenInScrape: 0, cached: true };
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
    const live = (set: LabelSet): boolean => set.seenInScrape === this.scrape || set === this.noLabels.set;
    for (const [hash, bucket] of this.byHash) {
      const kept = Array.isArray(bucket) ? bucket.filter(live) : live(bucket) ? [bucket] : [];
      for (const set of kept) set.names = [];
      if (kept.length === 0) this.byHash.delete(hash);
      else if (Array.isArray(bucket)) this.byHash.set(hash, kept.length === 1 ? (kept[0] as LabelSet) : kept);
    }
    this.values.clear();
    if (this.metadata.size > MAX_METADATA_LINES) this.metadata.clear();
  }

  /** The entry of a block text, `guess` (the block that followed the previous one last time) first. */
  block(text: string, guess: BlockEntry | null): BlockEntry {
    let entry: BlockEntry | undefined = guess !== null && guess.text === text ? guess : this.blocks.get(text);
    if (entry === undefined) {
      if (this.blocks.size >= MAX_CACHED_LABEL_BLOCKS) {
        const set = this.readLabelBlock(text, false);
        if (set !== null) this.touch(set);
        return { text: '', set, next: null, seenInScrape: this.scrape, cached: false };
      }
      const kept = detach(text);
      entry = { text: kept, set: this.readLabelBlock(kept, true), next: null, seenInScrape: 0, cached: true };
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
    if (valid === undefined) {
      valid = metadataLineIsValid(line);
      if (this.metadata.size < MAX_METADATA_LINES) this.metadata.set(detach(line), valid);
    }
    return valid;
  }

  touch(set: LabelSet): void {
    if (set.seenInScrape === this.scrape) return;
    set.seenInScrape = this.scrape;
    set.names = [];
  }

  /**
   * Read a label block such as `{gpu="0",UUID="GPU-..."}` with the package; null when it is
   * not valid. Blocks that differ only in label order share one LabelSet; a new LabelSet is
   * remembered only for a block that is `kept`.
   */
  private readLabelBlock(block: string, kept: boolean): LabelSet | null {
    const labels = labelsOfText(block);
    if (labels === null) return null;
    let sum = 0;
    let mixed = 0;
    for (const name of Object.keys(labels)) {
      if (!LABEL_NAME.test(name)) return null;
      const value = this.intern(labels[name] as string);
      labels[name] = value;
      // Sum and xor of per-label hashes: the same whatever the order of the labels.
      const h = labelHash(name, value);
      sum = (sum + h) | 0;
      mixed = mixed ^ (h << 7) ^ (h >>> 11);
    }
    const hash = (sum & 0x1fffff) * 0x100000000 + (mixed >>> 0);
    const bucket = this.byHash.get(hash);
    const known = bucket === undefined ? undefined : Array.isArray(bucket) ? bucket.find((s) => sameLabels(s.labels, labels)) : sameLabels(bucket.labels, labels) ? bucket : undefined;
    if (known !== undefined) return known;
    const set: LabelSet = { labels, hash, names: [], seenInScrape: 0 };
    if (kept) this.byHash.set(hash, bucket === undefined ? set : Array.isArray(bucket) ? [...bucket, set] : [bucket, set]);
    return set;
  }

  private intern(value: string): string {
    if (value.length > MAX_INTERNED_CHARS) return value;
    const known = this.values.get(value);
    if (known !== undefined) return known;
    if (this.values.size < MAX_CACHED_LABEL_BLOCKS) this.values.set(value, value);
    return value;
  }
}

/** A 32-bit string hash (h * 31 + c) of a label's name and value, in int32 arithmetic throughout. */
function labelHash(name: string, value: string): number {
  let h = 17;
  for (let i = 0; i < name.length; i++) h = ((h << 5) - h + name.charCodeAt(i)) | 0;
  h = ((h << 5) - h + 0xffff) | 0;
  for (let i = 0; i < value.length; i++) h = ((h << 5) - h + value.charCodeAt(i)) | 0;
  return h;
}

function sameLabels(a: SeriesLabels, b: SeriesLabels): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
  return true;
}

/** Whether `name` was read with `set` in this scrape already; records it when not. */
function seenName(set: LabelSet, name: string): boolean {
  const names = set.names;
  if (Array.isArray(names)) {
    if (names.includes(name)) return true;
    if (names.length < LIST_NAMES) names.push(name);
    else set.names = new Set([...names, name]);
    return false;
  }
  if (names.has(name)) return true;
  names.add(name);
  return false;
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
 * Reads every sample line of an exposition, fed in pieces. Valid DCGM_* series go to
 * `sink`; other valid lines are ignored; bad lines of any family are skipped and counted.
 *
 * Lines are read in place (positions into the piece, no per-line copies); a line cut by the
 * end of a piece waits for the next one. An exposition repeats its label blocks in the same
 * order in every family, so the block that followed the previous line's block last time is
 * tried first (a string comparison) before a lookup (a hash of the whole block).
 */
class ExpositionReader {
  private readonly skipped = new Map<SkipKind, { count: number; firstLine: number; excerpt: string }>();
  private skippedLines = 0;
  private lineNumber = 0;
  private previousName = '';
  private previousBlock: BlockEntry | null = null;
  /** Pieces of a line whose end has not arrived yet (joined once it does: a long line stays linear). */
  private carry: string[] = [];

  constructor(
    private readonly sink: SeriesSink,
    private readonly cache: LabelBlockCache,
  ) {
    cache.beginScrape();
  }

  write(piece: string): void {
    const lastNewline = piece.lastIndexOf('\n');
    if (lastNewline === -1) {
      if (piece !== '') this.carry.push(piece);
      return;
    }
    const text = this.carry.length === 0 ? piece : this.carry.join('') + piece;
    const end = text.length - piece.length + lastNewline + 1;
    this.readLines(text, end);
    this.carry = end === text.length ? [] : [detach(text.slice(end))];
  }

  end(): ExpositionReadResult {
    const rest = this.carry.join('');
    if (rest !== '') this.readLines(rest, rest.length);
    this.carry = [];
    this.cache.endScrape();
    const problems: string[] = [];
    for (const [kind, entry] of this.skipped) {
      problems.push(`skipped ${entry.count} ${kind} line(s), first at line ${entry.firstLine} (${entry.excerpt}): ${skipAdvice[kind]}`);
    }
    return { skippedLines: this.skippedLines, problems };
  }

  private skip(kind: SkipKind, text: string, from: number, to: number): void {
    this.skippedLines++;
    const entry = this.skipped.get(kind);
    if (entry) entry.count++;
    else {
      const excerpt = to - from > EXCERPT_CHARS ? `${text.slice(from, from + EXCERPT_CHARS)}...` : text.slice(from, to);
      this.skipped.set(kind, { count: 1, firstLine: this.lineNumber, excerpt: detach(excerpt) });
    }
  }

  /** Read the lines of text[0, end). */
  private readLines(text: string, end: number): void {
    const cache = this.cache;
    let lineStart = 0;
    while (lineStart < end) {
      let lineEnd = text.indexOf('\n', lineStart);
      if (lineEnd === -1 || lineEnd > end) lineEnd = end;
      let from = lineStart;
      let to = lineEnd;
      lineStart = lineEnd + 1;
      this.lineNumber++;
      while (from < to && isSpaceChar(text.charCodeAt(from))) from++;
      while (to > from && isSpaceChar(text.charCodeAt(to - 1))) to--;
      if (from === to) continue;

      if (text.charCodeAt(from) === 35 /* # */) {
        if ((text.startsWith('# HELP ', from) || text.startsWith('# TYPE ', from)) && !cache.metadataLine(text.slice(from, to))) {
          this.skip(SkipKind.Malformed, text, from, to);
        }
        continue;
      }

      // Metric name.
      if (!isNameStart(text.charCodeAt(from))) {
        this.skip(SkipKind.Malformed, text, from, to);
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
          this.skip(SkipKind.Malformed, text, from, to);
          continue;
        }
        const previous = this.previousBlock;
        block = cache.block(text.slice(at, close + 1), previous === null ? null : previous.next);
        // Only remembered blocks are linked: a chain through passing ones would keep them all.
        if (block.cached) {
          if (previous !== null) previous.next = block;
          this.previousBlock = block;
        }
        at = close + 1;
      } else if (at < to && at === nameEnd) {
        // The name ran into a character that is neither a name character, a blank nor "{".
        this.skip(SkipKind.Malformed, text, from, to);
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
      // A timestamp is epoch ms: one past 2^53 is not a time (and would never go stale).
      const timestampMs = timestampText === '' ? null : TIMESTAMP.test(timestampText) ? Number(timestampText) : NaN;
      if ((!finite && !NON_FINITE_NUMBER.test(valueText)) || (timestampMs !== null && !Number.isSafeInteger(timestampMs)) || labelSet === null) {
        this.skip(SkipKind.Malformed, text, from, to);
        continue;
      }

      // Valid line. Only DCGM families matter beyond this point.
      if (!text.startsWith('DCGM_', from)) continue;
      if (!finite) {
        this.skip(SkipKind.NonFinite, text, from, to);
        continue;
      }
      const value = Number(valueText);
      if (isDcgmBlank(value)) {
        this.skip(SkipKind.Blank, text, from, to);
        continue;
      }
      // Consecutive lines mostly share their family: reuse the name string (its hash is cached).
      // A copy, not a slice: names are kept for the scrape, and a slice would keep its piece.
      const previousName = this.previousName;
      const name =
        previousName.length === nameEnd - from && text.startsWith(previousName, from) ? previousName : (this.previousName = detach(text.slice(from, nameEnd)));
      cache.touch(labelSet);
      if (seenName(labelSet, name)) {
        this.skip(SkipKind.Duplicate, text, from, to);
        continue;
      }
      this.sink(name, labelSet.labels, value, timestampMs, block.cached);
    }
  }
}
