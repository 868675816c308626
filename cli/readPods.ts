/**
 * Reads the documents of an `inject` input: YAML (one or many documents) or JSON (an object or
 * a v1 List), as Pods and workloads (Deployment, StatefulSet, ReplicaSet, Job, CronJob) whose
 * pod template is expanded into one pod per replica. Pure: takes text, returns manifests;
 * text that does not parse throws CliError (exit 3), a document of another kind is returned as
 * unsupported so the others are still placed.
 */
import type { Pod, PodTemplateSpec } from 'kubernetes-types/core/v1.js';
import { parseAllDocuments } from 'yaml';
import { inputError } from './cliError.js';

/** Workload kinds whose pods the webhook places one by one as the controller creates them. */
export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'ReplicaSet', 'Job', 'CronJob'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export type Manifest =
  | { kind: 'pod'; document: number; pod: Pod }
  | {
      kind: 'workload';
      document: number;
      workload: { apiVersion: string; kind: WorkloadKind; name: string; namespace: string };
      /** The pods the controller would create, in order (names as the controller gives them, or generateName). */
      pods: Pod[];
    }
  | { kind: 'unsupported'; document: number; what: string; reason: string };

const describe = (doc: unknown): string => {
  if (typeof doc !== 'object' || doc === null) return JSON.stringify(doc);
  const d = doc as { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } };
  return `${String(d.apiVersion ?? '?')} ${String(d.kind ?? '(no kind)')} ${String(d.metadata?.name ?? '')}`.trim();
};

const isWorkloadKind = (kind: unknown): kind is WorkloadKind => typeof kind === 'string' && (WORKLOAD_KINDS as readonly string[]).includes(kind);

interface WorkloadLike {
  apiVersion?: string;
  kind: WorkloadKind;
  metadata?: { name?: string; namespace?: string };
  spec?: {
    replicas?: number;
    parallelism?: number;
    template?: PodTemplateSpec;
    jobTemplate?: { spec?: { parallelism?: number; template?: PodTemplateSpec } };
  };
}

/** How many pods the controller runs at once, and their template. */
function replicasAndTemplate(w: WorkloadLike): { replicas: number; template: PodTemplateSpec | undefined } {
  switch (w.kind) {
    case 'Deployment':
    case 'StatefulSet':
    case 'ReplicaSet':
      return { replicas: w.spec?.replicas ?? 1, template: w.spec?.template };
    case 'Job':
      return { replicas: w.spec?.parallelism ?? 1, template: w.spec?.template };
    case 'CronJob':
      return { replicas: w.spec?.jobTemplate?.spec?.parallelism ?? 1, template: w.spec?.jobTemplate?.spec?.template };
  }
}

function expandWorkload(w: WorkloadLike, document: number, origin: string): Manifest {
  const name = w.metadata?.name ?? '';
  const namespace = w.metadata?.namespace ?? 'default';
  const what = describe(w);
  if (name === '') return { kind: 'unsupported', document, what, reason: 'it has no metadata.name' };
  const { replicas, template } = replicasAndTemplate(w);
  if (!Array.isArray(template?.spec?.containers)) return { kind: 'unsupported', document, what, reason: `its pod template has no spec.containers (document ${document} of ${origin})` };
  if (!Number.isInteger(replicas) || replicas < 0) return { kind: 'unsupported', document, what, reason: `its replica count ${String(replicas)} is not a whole number` };
  const pods: Pod[] = [];
  for (let i = 0; i < replicas; i++) {
    const { name: _name, generateName: _generateName, ...templateMetadata } = template?.metadata ?? {};
    const metadata = { ...templateMetadata, namespace, ...(w.kind === 'StatefulSet' ? { name: `${name}-${i}` } : { generateName: `${name}-` }) };
    pods.push({ apiVersion: 'v1', kind: 'Pod', metadata, spec: template?.spec } as Pod);
  }
  return { kind: 'workload', document, workload: { apiVersion: w.apiVersion ?? '', kind: w.kind, name, namespace }, pods };
}

export function readManifests(text: string, origin: string): Manifest[] {
  const docs = parseAllDocuments(text);
  const objects: unknown[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      throw inputError(`cannot parse document ${i + 1} of ${origin}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const asList = value as { kind?: unknown; items?: unknown };
    if (asList.kind === 'List' && Array.isArray(asList.items)) objects.push(...asList.items);
    else objects.push(value);
  }
  if (objects.length === 0) throw inputError(`${origin} holds no documents: give a Pod or workload manifest (YAML or JSON)`);
  return objects.map((obj, i): Manifest => {
    const document = i + 1;
    const o = obj as { kind?: unknown; apiVersion?: unknown; spec?: { containers?: unknown } };
    if (o === null || typeof o !== 'object') return { kind: 'unsupported', document, what: describe(obj), reason: 'it is not an object' };
    if (o.kind === 'Pod' && (o.apiVersion === undefined || o.apiVersion === 'v1')) {
      if (!Array.isArray(o.spec?.containers)) return { kind: 'unsupported', document, what: describe(obj), reason: 'it is a Pod without spec.containers' };
      return { kind: 'pod', document, pod: obj as Pod };
    }
    if (isWorkloadKind(o.kind)) return expandWorkload(obj as WorkloadLike, document, origin);
    return { kind: 'unsupported', document, what: describe(obj), reason: `inject places Pods and the pods of ${WORKLOAD_KINDS.join(', ')}` };
  });
}
