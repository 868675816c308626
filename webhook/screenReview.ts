/**
 * What a worker thread does with an AdmissionReview body: parse it, decode the review, and run
 * the steps of the admission that need neither the inventory, the ledger nor the decision keys
 * (admission/admitPod.ts screenPod). It answers what those steps decide (skipped, refused as
 * invalid, a bad body). A pod that needs a placement comes back as what placement needs (`place`),
 * with the pod itself kept apart (`held`) for the worker to inject once the event loop has placed
 * it. A pod that carries a decision to verify goes back to the event loop whole. Pure.
 */
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { PlacementRequest, PlacementToInject, PodAdmission } from '../admission/admitPod.js';
import { injectPlacement, placementRequestOf, screenPod } from '../admission/admitPod.js';
import type { Config } from '../config/schema.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import { claimsDecision } from '../domain/decisionRecord.js';
import { podShapeProblem } from '../injector/podShape.js';
import { shortenForMessage } from '../injector/quoteForMessage.js';
import type { AdmissionRequestView } from './admissionReview.js';
import { decodeAdmissionReview, encodePatch, isPodCreate, podOf } from './admissionReview.js';
import type { InjectedAnswer } from './reviewScreenPool.js';
import { HttpError } from './httpErrors.js';
import { JsonBodyError, parseJsonBody } from './parseJsonBody.js';

/** What screening decided for a pod, without a placement. */
export interface ScreenedPod {
  podName: string;
  admission: PodAdmission;
}

export type ReviewScreening =
  /** Not JSON (or not an object or list at the top): the HTTP edge answers 400 as for any body. */
  | { kind: 'bad-json'; message: string }
  /** JSON, but not an AdmissionReview the webhook accepts. */
  | { kind: 'bad-review'; status: number; message: string }
  /**
   * Answered without a placement. `review` is the decoded review without its object; `screened`
   * is the pod's name for the log and the admission, or null for a request that is not a Pod
   * CREATE (answered allowed, unchanged).
   */
  | { kind: 'answered'; review: AdmissionRequestView; screened: ScreenedPod | null }
  /**
   * The pod needs a placement: the event loop places it (admitPod.ts placePod) and the worker that
   * screened it injects it (injectPlacement). `held` is the pod; it stays on the worker thread.
   */
  | { kind: 'place'; review: AdmissionRequestView; podName: string; placement: PlacementRequest; held?: HeldPod }
  /** The event loop must decide: the pod's decision record needs the keys. */
  | { kind: 'event-loop'; reason: string };

/** A pod screened for placement, as injectPlacement takes it: as sent, and after the MPS access check. */
export interface HeldPod {
  original: Pod;
  access: { pod: Pod; warnings: readonly string[] };
}

/**
 * Keys that verify nothing: a pod that claims a decision goes back to the event loop before
 * screenPod reads its record, so screening never verifies or seals with them.
 */
const NO_KEYS: DecisionKeyRing = Object.freeze({ current: Object.freeze({ id: '', secret: Buffer.alloc(0) }), verifying: Object.freeze([]) });

/** Why a pod goes back to the event loop whole. */
const CLAIMS_DECISION = 'the pod carries a decision record, verified with the decision keys';

/** How a pod is named in the admission log: its name, else its generateName and `*`. Only strings are logged: a refused pod may carry anything there. */
export function podNameForLog(pod: Pod): string {
  const named = (value: unknown): string | null => (typeof value === 'string' ? shortenForMessage(value) : null);
  return named(pod.metadata?.name) ?? `${named(pod.metadata?.generateName) ?? ''}*`;
}

export function screenReview(body: Uint8Array, config: Config): ReviewScreening {
  let parsed: unknown;
  try {
    parsed = parseJsonBody(body);
  } catch (err) {
    if (err instanceof JsonBodyError) return { kind: 'bad-json', message: err.message };
    throw err;
  }
  let review: AdmissionRequestView;
  try {
    review = decodeAdmissionReview(parsed);
  } catch (err) {
    if (err instanceof HttpError) return { kind: 'bad-review', status: err.status, message: err.message };
    throw err;
  }
  const head = { ...review, object: undefined };
  if (!isPodCreate(review)) return { kind: 'answered', review: head, screened: null };
  const pod = podOf(review);
  // claimsDecision reads any value safely; the shape is checked only for pods that claim one (screenPod checks it for the rest).
  if (claimsDecision(pod) && podShapeProblem(pod) === null) return { kind: 'event-loop', reason: CLAIMS_DECISION };
  const req = { pod, namespace: review.namespace, requestUid: review.uid, dryRun: review.dryRun };
  const screening = screenPod(req, { config, keys: NO_KEYS });
  if (screening.kind === 'place') {
    // No decision is claimed (checked above), so screening read a fresh request: never a reinvocation or a forgery.
    if (screening.intent.kind !== 'place' || screening.intent.forged !== null) return { kind: 'event-loop', reason: CLAIMS_DECISION };
    return {
      kind: 'place',
      review: head,
      podName: podNameForLog(pod),
      placement: placementRequestOf(req, screening.intent),
      held: { original: pod, access: screening.access },
    };
  }
  return { kind: 'answered', review: head, screened: { podName: podNameForLog(pod), admission: screening.admission } };
}

/** Inject a held pod with its placement and encode the patch for the answer: what the worker thread that holds it does, and the event loop when that worker is busy. */
export function injectHeld(pod: HeldPod, placed: PlacementToInject, config: Config): InjectedAnswer {
  const injected = injectPlacement(pod.original, pod.access, placed, config);
  return injected.ok ? { ok: true, patch: encodePatch(injected.patch), warnings: injected.warnings } : injected;
}
