/**
 * Kubernetes quantities for GPU memory, to whole MiB.
 */

const SUFFIX_BYTES: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/;

/** Parse "8Gi" / "8192Mi" / "10G" to MiB, rounding up. Returns null for text that is not a quantity. */
export function quantityToMiB(text: string): number | null {
  const m = QUANTITY.exec(text.trim());
  if (!m) return null;
  const bytes = Number(m[1]) * (SUFFIX_BYTES[m[2] ?? ''] ?? 1);
  if (!Number.isFinite(bytes) || bytes <= 0) return null;
  return Math.ceil(bytes / 1024 ** 2);
}

/** Human form of a MiB figure for messages: "6.1Gi" or "512Mi". */
export function formatMiB(mib: number): string {
  if (Math.abs(mib) >= 1024) return `${(mib / 1024).toFixed(1).replace(/\.0$/, '')}Gi`;
  return `${Math.round(mib)}Mi`;
}
