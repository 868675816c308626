/**
 * Parsers of annotation values shared by reading a request and recording a decision.
 * Pure: text in, value or null out.
 */
import { PlacementPolicy, Priority } from './slot.js';

/** "a, b,,a" -> ["a", "b"]: trimmed, empty entries dropped, first occurrence kept. */
export function parseContainerList(text: string | undefined): string[] {
  if (text === undefined) return [];
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return [...new Set(names)];
}

/** "high" / "low", any case and surrounding space; null otherwise. */
export function parsePriority(text: string | undefined): Priority | null {
  const value = text?.trim().toLowerCase();
  if (value === Priority.High) return Priority.High;
  if (value === Priority.Low) return Priority.Low;
  return null;
}

/** A whole number written in decimal digits only ("25", " 3 "); null for anything else, signs and fractions included. */
export function parseWholeNumber(text: string | undefined): number | null {
  if (text === undefined) return null;
  const trimmed = text.trim();
  if (!/^[0-9]{1,9}$/.test(trimmed)) return null;
  return Number(trimmed);
}

/** "binpack" / "spread", any case and surrounding space; null otherwise. */
export function parsePlacementPolicy(text: string | undefined): PlacementPolicy | null {
  const value = text?.trim().toLowerCase();
  if (value === PlacementPolicy.Binpack) return PlacementPolicy.Binpack;
  if (value === PlacementPolicy.Spread) return PlacementPolicy.Spread;
  return null;
}

/** A GPU UUID as nvidia-smi -L and dcgm-exporter print it: "GPU-" and 32 hex digits in 8-4-4-4-12 groups. */
const GPU_UUID = /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** "GPU-a, GPU-b" -> the UUIDs, trimmed, duplicates dropped; `invalid` lists entries that are not GPU UUIDs. */
export function parseGpuUuidList(text: string | undefined): { uuids: string[]; invalid: string[] } {
  const entries = parseContainerList(text);
  return { uuids: entries.filter((e) => GPU_UUID.test(e)), invalid: entries.filter((e) => !GPU_UUID.test(e)) };
}

/** Longest gpu-model annotation: more than any GPU model name (the longest today are about 30 characters). */
export const GPU_MODEL_MAX_LENGTH = 128;
const GPU_MODEL = /^[A-Za-z0-9 ._+/()-]+$/;

/**
 * A gpu-model annotation ("H100", "A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"): trimmed, at most
 * GPU_MODEL_MAX_LENGTH characters of letters, digits, spaces and . _ - + / ( ). Null for anything else.
 */
export function parseGpuModel(text: string | undefined): string | null {
  const trimmed = text?.trim();
  if (trimmed === undefined || trimmed === '' || trimmed.length > GPU_MODEL_MAX_LENGTH) return null;
  return GPU_MODEL.test(trimmed) ? trimmed : null;
}
