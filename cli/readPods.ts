/**
 * Reads the Pods of an `inject` input: YAML (one or many documents) or JSON (a Pod or a v1 List).
 * Pure apart from nothing: takes text, returns pods or throws CliError.
 */
import type { Pod } from 'kubernetes-types/core/v1.js';
import { parseAllDocuments } from 'yaml';
import { CliError } from './cliError.js';

const describe = (doc: unknown): string => {
  if (typeof doc !== 'object' || doc === null) return JSON.stringify(doc);
  const d = doc as { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } };
  return `${String(d.apiVersion ?? '?')} ${String(d.kind ?? '(no kind)')} ${String(d.metadata?.name ?? '')}`.trim();
};

export function readPods(text: string, origin: string): Pod[] {
  const docs = parseAllDocuments(text);
  const objects: unknown[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      throw new CliError(`cannot parse document ${i + 1} of ${origin}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const asList = value as { kind?: unknown; items?: unknown };
    if (asList.kind === 'List' && Array.isArray(asList.items)) objects.push(...asList.items);
    else objects.push(value);
  }
  if (objects.length === 0) throw new CliError(`${origin} holds no documents: give a Pod manifest (YAML or JSON)`);
  return objects.map((obj, i) => {
    const o = obj as { kind?: unknown; apiVersion?: unknown; spec?: { containers?: unknown } };
    if (o === null || typeof o !== 'object' || o.kind !== 'Pod' || (o.apiVersion !== undefined && o.apiVersion !== 'v1')) {
      throw new CliError(
        `document ${i + 1} of ${origin} is ${describe(obj)}, not a v1 Pod: inject works on Pods only (render Deployments with kubectl first, or let the webhook inject their pods)`,
      );
    }
    if (!Array.isArray(o.spec?.containers)) throw new CliError(`document ${i + 1} of ${origin} is a Pod without spec.containers`);
    return obj as Pod;
  });
}
