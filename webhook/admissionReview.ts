/**
 * AdmissionReview decoding and encoding (admission.k8s.io/v1 and v1beta1). Pure.
 */
import type { Operation } from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { PodAdmission } from '../admission/admitPod.js';
import { describeForMessage } from '../injector/quoteForMessage.js';
import { badRequest } from './httpErrors.js';

export const AdmissionApiVersion = { V1: 'admission.k8s.io/v1', V1beta1: 'admission.k8s.io/v1beta1' } as const;
export type AdmissionApiVersion = (typeof AdmissionApiVersion)[keyof typeof AdmissionApiVersion];

export interface AdmissionRequestView {
  apiVersion: AdmissionApiVersion;
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: string;
  namespace: string;
  dryRun: boolean;
  /** The object, when present (absent on DELETE / CONNECT). */
  object: unknown;
}

interface AdmissionStatus {
  code: number;
  message: string;
  reason?: string;
}

export interface AdmissionResponseBody {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: AdmissionStatus;
}

export interface AdmissionReviewResponse {
  apiVersion: AdmissionApiVersion;
  kind: 'AdmissionReview';
  response: AdmissionResponseBody;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validate the shape of an AdmissionReview request; throws a 400 HttpError naming the bad field. */
export function decodeAdmissionReview(body: unknown): AdmissionRequestView {
  if (!isRecord(body)) throw badRequest('request body must be a JSON AdmissionReview object');
  const apiVersion = body.apiVersion;
  if (apiVersion !== AdmissionApiVersion.V1 && apiVersion !== AdmissionApiVersion.V1beta1) {
    throw badRequest(`unsupported AdmissionReview apiVersion ${describeForMessage(apiVersion)}: send admission.k8s.io/v1 (or v1beta1)`);
  }
  if (body.kind !== 'AdmissionReview') throw badRequest(`expected kind "AdmissionReview", got ${describeForMessage(body.kind)}`);
  const request = body.request;
  if (!isRecord(request)) throw badRequest('AdmissionReview has no "request" object');
  if (typeof request.uid !== 'string' || request.uid === '') throw badRequest('AdmissionReview request.uid must be a non-empty string');
  const kind = request.kind;
  if (!isRecord(kind) || typeof kind.kind !== 'string') throw badRequest('AdmissionReview request.kind must be an object with a "kind" string');
  if (typeof request.operation !== 'string') throw badRequest('AdmissionReview request.operation must be a string (CREATE, UPDATE, ...)');
  if (request.dryRun !== undefined && typeof request.dryRun !== 'boolean') throw badRequest('AdmissionReview request.dryRun must be a boolean');
  const object = request.object;
  if (request.operation === 'CREATE' && kind.kind === 'Pod' && !isRecord(object)) {
    throw badRequest('AdmissionReview for a Pod CREATE has no request.object');
  }
  const objectNamespace = isRecord(object) && isRecord(object.metadata) && typeof object.metadata.namespace === 'string' ? object.metadata.namespace : '';
  return {
    apiVersion,
    uid: request.uid,
    kind: { group: typeof kind.group === 'string' ? kind.group : '', version: typeof kind.version === 'string' ? kind.version : '', kind: kind.kind },
    operation: request.operation,
    namespace: typeof request.namespace === 'string' && request.namespace !== '' ? request.namespace : objectNamespace,
    dryRun: request.dryRun === true,
    object,
  };
}

/** Is this a request the injector acts on? (core/v1 Pod, CREATE) */
export function isPodCreate(req: AdmissionRequestView): boolean {
  return req.kind.group === '' && req.kind.kind === 'Pod' && req.operation === 'CREATE';
}

export const podOf = (req: AdmissionRequestView): Pod => req.object as Pod;

const review = (apiVersion: AdmissionApiVersion, response: AdmissionResponseBody): AdmissionReviewResponse => ({
  apiVersion,
  kind: 'AdmissionReview',
  response,
});

export function allowUnchanged(apiVersion: AdmissionApiVersion, uid: string, warnings: string[] = []): AdmissionReviewResponse {
  return review(apiVersion, { uid, allowed: true, ...(warnings.length > 0 ? { warnings } : {}) });
}

/** A JSON patch as the answer carries it (base64 of its JSON text), and how many operations it holds. */
export interface EncodedPatch {
  base64: string;
  ops: number;
}

/** Encode a patch for the answer; a worker thread can do it and hand the text over. */
export function encodePatch(patch: Operation[]): EncodedPatch {
  return { base64: Buffer.from(JSON.stringify(patch)).toString('base64'), ops: patch.length };
}

export function allowWithPatch(apiVersion: AdmissionApiVersion, uid: string, patch: Operation[], warnings: string[]): AdmissionReviewResponse {
  return allowWithEncodedPatch(apiVersion, uid, encodePatch(patch), warnings);
}

export function allowWithEncodedPatch(apiVersion: AdmissionApiVersion, uid: string, patch: EncodedPatch, warnings: string[]): AdmissionReviewResponse {
  if (patch.ops === 0) return allowUnchanged(apiVersion, uid, warnings);
  return review(apiVersion, {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: patch.base64,
    ...(warnings.length > 0 ? { warnings } : {}),
  });
}

/** The key and empty value the patch is spliced after. */
const EMPTY_PATCH_FIELD = '"patch":""';

/**
 * The answer as JSON text: exactly JSON.stringify(review), but the base64 patch (kilobytes, and
 * needing no escapes) is spliced in rather than scanned character by character again. The first
 * `"patch":""` is the field itself: the fields before it are fixed text, a boolean, or the uid,
 * whose quotes JSON.stringify escapes.
 */
export function admissionReviewJson(review: AdmissionReviewResponse): string {
  const patch = review.response.patch;
  if (patch === undefined || patch === '') return JSON.stringify(review);
  const text = JSON.stringify({ ...review, response: { ...review.response, patch: '' } });
  const at = text.indexOf(EMPTY_PATCH_FIELD) + EMPTY_PATCH_FIELD.length - 1;
  return text.slice(0, at) + patch + text.slice(at);
}

export function deny(apiVersion: AdmissionApiVersion, uid: string, code: number, message: string, reason?: string): AdmissionReviewResponse {
  return review(apiVersion, { uid, allowed: false, status: { code, message, ...(reason ? { reason } : {}) } });
}

/** The AdmissionReview answer for the outcome of the pipeline. */
export function encodeAdmission(apiVersion: AdmissionApiVersion, uid: string, admission: PodAdmission): AdmissionReviewResponse {
  switch (admission.outcome) {
    case 'mutated':
      return allowWithPatch(apiVersion, uid, admission.patch, admission.warnings);
    case 'skipped':
      return allowUnchanged(apiVersion, uid);
    case 'allowed-unmutated':
      return allowUnchanged(apiVersion, uid, [admission.warning]);
    case 'refused': {
      const code = admission.reason === 'invalid-pod' ? 400 : admission.reason === 'commit-failed' ? 503 : 403;
      return deny(apiVersion, uid, code, admission.message, admission.reason);
    }
  }
}
