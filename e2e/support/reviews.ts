/** AdmissionReviews for whole-system tests, built from the real captured reviews in e2e/testdata. */
import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import path from 'node:path';
import { repoRoot } from './webhookProcess.js';

type Json = Record<string, unknown>;

/** Read a captured review, dropping its leading `# SOURCE:` comment line. */
export function loadCapturedReview(file: 'v1-pod-create-kubectl.json.txt' | 'v1beta1-pod-create-replicaset-generatename.json.txt'): Json {
  const text = readFileSync(path.join(repoRoot, 'e2e/testdata', file), 'utf8');
  return JSON.parse(text.split('\n').filter((l) => !l.startsWith('# SOURCE:')).join('\n')) as Json;
}

/** The captured kubectl review, with a fresh uid/name and the given pod annotations. */
export function gpuPodReview(opts: { uid: string; name: string; annotations?: Record<string, string>; dryRun?: boolean; version?: 'v1' | 'v1beta1' }): Json {
  const base = opts.version === 'v1beta1' ? loadCapturedReview('v1beta1-pod-create-replicaset-generatename.json.txt') : loadCapturedReview('v1-pod-create-kubectl.json.txt');
  const request = base.request as Json;
  const object = request.object as { metadata: Json };
  object.metadata.annotations = { ...(object.metadata.annotations as Json | undefined), ...opts.annotations };
  if (opts.version !== 'v1beta1') {
    object.metadata.name = opts.name;
    request.name = opts.name;
  }
  request.uid = opts.uid;
  if (opts.dryRun) request.dryRun = true;
  return base;
}

/**
 * The pod the API server would store after admission: the review's object with the webhook's
 * patch applied, in the review's namespace, named (a generateName pod gets `<generateName><suffix>`).
 */
export function storedPodAfter(review: Json, patchBase64: string, opts: { suffix?: string; nodeName?: string; status?: Json } = {}): Json {
  const request = review.request as { object: Json; namespace?: string };
  const ops = JSON.parse(Buffer.from(patchBase64, 'base64').toString()) as jsonPatch.Operation[];
  const pod = jsonPatch.applyPatch(structuredClone(request.object), ops, true, false).newDocument as { metadata: Json; spec: Json };
  const metadata: Json = { ...pod.metadata, namespace: request.namespace ?? pod.metadata.namespace };
  if (metadata.name === undefined) metadata.name = `${String(metadata.generateName ?? 'pod-')}${opts.suffix ?? Math.random().toString(36).slice(2, 7)}`;
  delete metadata.uid;
  delete metadata.resourceVersion;
  return { ...pod, metadata, spec: { ...pod.spec, ...(opts.nodeName !== undefined ? { nodeName: opts.nodeName } : {}) }, status: opts.status ?? { phase: 'Pending' } };
}
