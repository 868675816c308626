/**
 * How much ingestion reads at most, shared by the sources and the configuration defaults.
 * Pure constants.
 */

/**
 * A scrape of one dcgm-exporter, or a dump file, is refused past this many bytes. One node
 * with 8 GPUs, 40 families and 48 pods on every GPU writes about 5 MB.
 */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * A Prometheus answer is refused past this many bytes: it covers the whole cluster (1,000
 * nodes x 8 GPUs with two minutes of samples is about 30 MB).
 */
export const DEFAULT_PROMETHEUS_MAX_BODY_BYTES = 64 * 1024 * 1024;

/** When the samples of a dump file count as taken. */
export const FileSampleTime = {
  /** When the file is read: a static dump (an example, a test fixture) stays usable. */
  Read: 'read',
  /** The file's modification time: a dump that a process keeps rewriting goes stale when it stops. */
  Modified: 'modified',
} as const;
export type FileSampleTime = (typeof FileSampleTime)[keyof typeof FileSampleTime];

/** Bytes in words for messages: "8 MiB", "200.0 MiB", "512 bytes". */
export function describeBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
