/**
 * The oracle of the fuzz corpus: what the webhook may answer to any request body.
 * Either a 4xx with a message, or an AdmissionReview that echoes the uid and, when it carries a
 * patch, one that applies to the pod sent and leaves a pod the API server accepts (when the pod
 * sent was one). Never a 5xx, an internal error, a stack trace or a message of unbounded size.
 */
import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { podSpecProblems } from '../../injector/podSpecProblems.js';

/** The API server's limit on the total size of a pod's annotations (keys plus values, bytes). */
const TOTAL_ANNOTATION_BYTES = 256 * 1024;
/** The longest message, warning or error text the webhook may send back. */
export const MAX_MESSAGE_CHARS = 4096;

export interface Reply {
  status: number;
  body: string;
}

export interface Verdict {
  /** A class of answer for the report: "http-413", "patched", "denied-400-invalid-pod", ... */
  outcome: string;
  /** Null when the answer is acceptable; else what is wrong with it. */
  problem: string | null;
}

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function messageProblem(what: string, text: unknown): string | null {
  if (typeof text !== 'string' || text.trim() === '') return `${what} is empty or not a string`;
  if (text.length > MAX_MESSAGE_CHARS) return `${what} is ${text.length} characters long`;
  if (/\n\s+at .+:\d+/.test(text) || /\(node:internal|\bat Object\.|\.js:\d+:\d+\)/.test(text)) return `${what} holds a stack trace`;
  return null;
}

function sentReview(body: Buffer): Json | null {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return isRecord(value) ? value : null;
  } catch {
    return null;
  }
}

/** Problems that make the API server reject a pod, or the validator failed on it. */
function podValidity(pod: unknown): string[] {
  try {
    const problems = podSpecProblems(pod as Pod);
    new PodModel(pod as ConstructorParameters<typeof PodModel>[0]).validate();
    return problems;
  } catch (err) {
    return [(err as Error).message.slice(0, 300)];
  }
}

function annotationBytes(pod: Pod): number {
  let total = 0;
  for (const [key, value] of Object.entries(pod.metadata?.annotations ?? {})) total += Buffer.byteLength(key) + Buffer.byteLength(String(value));
  return total;
}

export function judgeAnswer(body: Buffer, reply: Reply): Verdict {
  if (reply.status !== 200) {
    const outcome = `http-${reply.status}`;
    if (reply.status < 400 || reply.status >= 500) return { outcome, problem: `HTTP ${reply.status}: ${reply.body.slice(0, 300)}` };
    let error: unknown;
    try {
      error = (JSON.parse(reply.body) as Json).error;
    } catch {
      return { outcome, problem: `HTTP ${reply.status} without a JSON error body: ${reply.body.slice(0, 300)}` };
    }
    return { outcome, problem: messageProblem('the error', error) };
  }

  let answer: Json;
  try {
    answer = JSON.parse(reply.body) as Json;
  } catch {
    return { outcome: 'unparsable-200', problem: `HTTP 200 with a body that is not JSON: ${reply.body.slice(0, 300)}` };
  }
  const review = sentReview(body);
  const request = isRecord(review?.request) ? review.request : null;
  const response = isRecord(answer.response) ? answer.response : null;
  if (answer.kind !== 'AdmissionReview' || response === null) return { outcome: 'not-a-review', problem: `HTTP 200 that is not an AdmissionReview: ${reply.body.slice(0, 300)}` };
  if (request === null || typeof request.uid !== 'string' || response.uid !== request.uid) {
    return { outcome: 'wrong-uid', problem: `the answer's uid ${JSON.stringify(response.uid)?.slice(0, 80)} is not the request's` };
  }
  if (answer.apiVersion !== review?.apiVersion) return { outcome: 'wrong-version', problem: `answered in ${String(answer.apiVersion)} to ${String(review?.apiVersion)}` };
  for (const [i, w] of (Array.isArray(response.warnings) ? response.warnings : []).entries()) {
    const problem = messageProblem(`warning ${i}`, w);
    if (problem !== null) return { outcome: 'bad-warning', problem };
  }

  if (response.allowed !== true) {
    const status = isRecord(response.status) ? response.status : {};
    const code = typeof status.code === 'number' ? status.code : 0;
    const outcome = `denied-${code}-${String(status.reason ?? 'no-reason')}`;
    if (code < 400 || code >= 500) return { outcome, problem: `denied with code ${code}: ${String(status.message).slice(0, 300)}` };
    return { outcome, problem: messageProblem('the denial message', status.message) };
  }

  if (response.patch === undefined) return { outcome: 'allowed-unchanged', problem: null };
  if (response.patchType !== 'JSONPatch' || typeof response.patch !== 'string') return { outcome: 'bad-patch', problem: 'a patch without patchType JSONPatch' };
  const pod = request.object;
  const validBefore = podValidity(pod).length === 0;
  let ops: Operation[];
  try {
    ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
    fjp.applyPatch(pod, ops, true, true);
  } catch (err) {
    return { outcome: 'bad-patch', problem: `the patch does not apply: ${(err as Error).message.slice(0, 300)}` };
  }
  const patched = pod as Pod;
  const bytes = annotationBytes(patched);
  if (bytes > TOTAL_ANNOTATION_BYTES) return { outcome: 'patched', problem: `the patched pod's annotations take ${bytes} bytes, above the API server's ${TOTAL_ANNOTATION_BYTES}` };
  if (validBefore) {
    const after = podValidity(patched);
    if (after.length > 0) return { outcome: 'patched', problem: `a valid pod became invalid: ${after.join('; ')}` };
  }
  return { outcome: validBefore ? 'patched' : 'patched-invalid-input', problem: null };
}
