/**
 * The webhook's HTTP surface (express): POST /mutate, GET /healthz, /readyz, /metrics.
 * This is the one place that catches errors: everything below returns typed results or
 * throws typed errors with a user-facing message.
 */
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { AdmitContext, PlacementToInject, PodAdmission } from '../admission/admitPod.js';
import { AdmissionOutcome, placePod, refusedAsInvalid, releasePlacement } from '../admission/admitPod.js';
import { admitAndCommit, commitPlacement } from '../admission/admitAndCommit.js';
import type { CommitStep } from '../admission/admitAndCommit.js';
import type { Reservation, SlotChoice } from '../domain/slot.js';
import type { Config } from '../config/schema.js';
import type { ReservationStore } from '../reservations/reservationStore.js';
import { admissionDeadline } from './admissionDeadline.js';
import type { AdmissionRequestView, AdmissionReviewResponse, EncodedPatch } from './admissionReview.js';
import { admissionReviewJson, allowUnchanged, allowWithEncodedPatch, decodeAdmissionReview, deny, encodeAdmission, encodePatch, isPodCreate, podOf } from './admissionReview.js';
import { describeForMessage, shortenForMessage } from '../injector/quoteForMessage.js';
import { HttpError } from './httpErrors.js';
import { JsonBodyError, parseJsonBody } from './parseJsonBody.js';
import type { HeldPodHandle, PooledInjection, ReviewScreenPool } from './reviewScreenPool.js';
import { injectHeld, podNameForLog, screenReview } from './screenReview.js';
import type { ReviewScreening, ScreenedPod } from './screenReview.js';
import type { WebhookMetrics } from './webhookMetrics.js';

export interface WebhookAppDeps {
  config: Config;
  logger: Logger;
  metrics: WebhookMetrics;
  store: ReservationStore;
  /** A fresh admission context (current inventory, ledger, clock) for each attempt. */
  admitContext: () => AdmitContext;
  /** Ready once the first metrics have loaded (and the cluster state, when enabled) while some GPU's metrics are fresh. */
  readiness: () => { ready: boolean; reason: string };
  /** True once shutdown has begun: readiness fails so the endpoint is taken out of rotation. */
  draining: () => boolean;
  /** Worker threads for bodies above server.offloadBodyBytes; absent: every body is parsed on the event loop. */
  reviewScreens?: ReviewScreenPool;
}

export interface WebhookApp {
  app: express.Express;
  /** Admission requests being answered right now (the server's drain tracks every HTTP request: drainServer.ts). */
  inFlight: () => number;
}

const outcomeOf = (admission: PodAdmission): string => admission.outcome;

export function createWebhookApp(deps: WebhookAppDeps): WebhookApp {
  const { config, logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  // Admission answers are unique per request: no ETag hashing, and no query strings to parse.
  app.set('etag', false);
  app.set('query parser', false);
  let inFlight = 0;
  const done = (): void => {
    inFlight -= 1;
  };

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  app.get('/readyz', (_req, res) => {
    if (deps.draining()) {
      res.status(503).type('text/plain').send('not ready: shutting down\n');
      return;
    }
    const { ready, reason } = deps.readiness();
    // Ready with a reason is ready but degraded: the reason follows "ok".
    res.status(ready ? 200 : 503).type('text/plain').send(ready ? (reason === '' ? 'ok\n' : `ok, ${reason}\n`) : `not ready: ${reason}\n`);
  });

  app.get('/metrics', async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  const requireJson = (req: Request, _res: Response, next: NextFunction): void => {
    if (!req.is('application/json')) {
      next(new HttpError(415, `content type must be application/json, got ${describeForMessage(req.get('content-type') ?? '(none)')}`));
      return;
    }
    next();
  };

  const jsonBody = express.json({ limit: config.server.maxBodyBytes, strict: true });
  // Large bodies are read raw and parsed on a worker thread (ADR 0015); only UTF-8 ones, the charset parsed there.
  const rawBody = express.raw({ limit: config.server.maxBodyBytes, type: () => true });
  const offloads = (req: Request): boolean => {
    if (deps.reviewScreens === undefined || Number(req.get('content-length') ?? 0) <= config.server.offloadBodyBytes) return false;
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(req.get('content-type') ?? '')?.[1]?.toLowerCase();
    return charset === undefined || charset === 'utf-8';
  };
  const readBody = (req: Request, res: Response, next: NextFunction): void => (offloads(req) ? rawBody : jsonBody)(req, res, next);

  app.post('/mutate', requireJson, readBody, (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    inFlight += 1;
    const finish = (outcome: string, status: number, body: AdmissionReviewResponse): void => {
      metrics.requests.inc({ outcome });
      metrics.duration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      // The same bytes and headers as res.json, written at once with the length known: no content-type
      // parsing, charset rewriting or second measure of the text per admission.
      const bytes = Buffer.from(admissionReviewJson(body));
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length });
      res.end(bytes);
      done();
    };

    const answer = (review: AdmissionRequestView, admitted: () => Promise<Answer>): void => {
      admitted()
        .then(({ response, outcome, log }) => {
          logger.info({ uid: review.uid, namespace: review.namespace, dryRun: review.dryRun, outcome, ...log }, `admission ${outcome}`);
          finish(outcome, 200, response);
        })
        .catch((err: unknown) => {
          const message = `mps-injector failed while handling this pod: ${shortenForMessage((err as Error).message ?? String(err))}. The pod was not changed; see the webhook logs for uid ${review.uid}.`;
          logger.error({ uid: review.uid, err }, 'unexpected error while answering an admission');
          finish('error', 200, deny(review.apiVersion, review.uid, 500, message, 'InternalError'));
        });
    };
    const decodeAndAnswer = (body: () => unknown): void => {
      let review: AdmissionRequestView;
      try {
        review = decodeAdmissionReview(body());
      } catch (err) {
        done();
        next(err);
        return;
      }
      answer(review, () => answerReview(review, deps, null));
    };

    const pool = deps.reviewScreens;
    if (!Buffer.isBuffer(req.body) || pool === undefined) {
      decodeAndAnswer(() => req.body);
      return;
    }
    const raw = req.body;
    void pool.screen(raw).then((pooled) => {
      if (!pooled.ok && pooled.busy !== true) logger.warn({ reason: pooled.reason, bodyBytes: raw.length }, 'AdmissionReview parsed on the event loop: its worker thread did not answer');
      const screening = pooled.ok ? pooled.screening : null;
      if (screening?.kind === 'answered') {
        answer(screening.review, () => answerReview(screening.review, deps, screening.screened));
      } else if (screening?.kind === 'place' && pooled.ok && pooled.held !== undefined) {
        const held = pooled.held;
        answer(screening.review, () => answerPlaced(screening, held, raw, deps, pool));
      } else if (screening?.kind === 'bad-json' || screening?.kind === 'bad-review') {
        // The same errors, and so the same answers, as for a body parsed here: reading it again would fail the same way.
        done();
        next(screening.kind === 'bad-review' ? new HttpError(screening.status, screening.message) : new JsonBodyError(screening.message));
      } else {
        // A pod whose decision record needs the keys, or no answer from the worker.
        decodeAndAnswer(() => parseJsonBody(raw));
      }
    }, next);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found: the webhook serves POST /mutate, GET /healthz, /readyz and /metrics' });
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; statusCode?: number; type?: string; message?: string };
    let status = err instanceof HttpError ? err.status : (e.status ?? e.statusCode ?? 500);
    let message = shortenForMessage(e.message ?? String(err));
    if (e.type === 'entity.too.large') {
      status = 413;
      message = `AdmissionReview body exceeds the ${config.server.maxBodyBytes}-byte limit (server.maxBodyBytes)`;
    } else if (e.type === 'entity.parse.failed') {
      status = 400;
      message = `request body is not valid JSON: ${message}`;
    } else if (status >= 500) {
      logger.error({ err }, 'unexpected error at the HTTP edge');
      message = `internal error: ${message}`;
    }
    const outcome = status === 413 ? 'too-large' : status === 415 ? 'wrong-content-type' : status < 500 ? 'bad-request' : 'error';
    metrics.requests.inc({ outcome });
    logger.warn({ status, outcome }, message);
    res.status(status).json({ error: message });
  });

  return { app, inFlight: () => inFlight };
}

interface Answer {
  response: AdmissionReviewResponse;
  outcome: string;
  log: Record<string, unknown>;
}

/** The answer to a review: placed and committed here, or as a worker thread screened it (`screened`). */
async function answerReview(review: AdmissionRequestView, deps: WebhookAppDeps, screened: ScreenedPod | null): Promise<Answer> {
  if (!isPodCreate(review)) {
    return { response: allowUnchanged(review.apiVersion, review.uid), outcome: 'skipped', log: { skip: `${review.kind.kind} ${review.operation} is not a Pod CREATE` } };
  }
  const { admission, attempts, podName } = screened === null ? await placeAndCommit(review, deps) : { ...screened, attempts: 1 };
  return admissionAnswer(review, deps, admission, attempts, podName);
}

/** The answer, log fields and counters for an admission. */
function admissionAnswer(review: AdmissionRequestView, deps: WebhookAppDeps, admission: PodAdmission, attempts: number, podName: string): Answer {
  if (admission.outcome === 'mutated') return mutatedAnswer(review, deps, { ...admission, patch: encodePatch(admission.patch) }, attempts, podName);
  const log: Record<string, unknown> = { pod: podName, attempts };
  if (admission.outcome === 'refused') {
    deps.metrics.decisions.inc({ result: 'refused', reason: admission.reason });
    Object.assign(log, { reason: admission.reason, message: admission.message });
  } else if (admission.outcome === 'allowed-unmutated') {
    deps.metrics.decisions.inc({ result: 'refused', reason: admission.reason });
    Object.assign(log, { reason: admission.reason, warning: admission.warning });
  } else {
    Object.assign(log, { skip: admission.reason });
  }
  return { response: encodeAdmission(review.apiVersion, review.uid, admission), outcome: outcomeOf(admission), log };
}

/** A mutated pod's answer, whether its patch was encoded here or on the worker thread that injected it. */
function mutatedAnswer(
  review: AdmissionRequestView,
  deps: WebhookAppDeps,
  mutated: { choice: SlotChoice; reservation: Reservation | null; reinjected: boolean; patch: EncodedPatch; warnings: string[] },
  attempts: number,
  podName: string,
): Answer {
  if (!mutated.reinjected) deps.metrics.decisions.inc({ result: 'granted', reason: deps.config.placement.policy });
  const log = {
    pod: podName,
    attempts,
    node: mutated.choice.node,
    gpu: mutated.choice.gpuIndex,
    threadPercent: mutated.choice.threadPercent,
    memoryLimitMiB: mutated.choice.memoryLimitMiB,
    reservation: mutated.reservation?.id ?? null,
    reinjected: mutated.reinjected,
    patchOps: mutated.patch.ops,
    decision: mutated.choice.reason,
  };
  return { response: allowWithEncodedPatch(review.apiVersion, review.uid, mutated.patch, mutated.warnings), outcome: AdmissionOutcome.Mutated, log };
}

/**
 * A pod a worker thread screened for placement: placed here (the ledger is the event loop's),
 * injected and diffed on that worker, then committed here. The same steps, answers and logs as
 * admitAndCommit; a worker that fails to inject gives the placement back and the pod is placed
 * here from the start, and a commit lost to another writer is placed again here.
 */
async function answerPlaced(screening: Extract<ReviewScreening, { kind: 'place' }>, held: HeldPodHandle, raw: Buffer, deps: WebhookAppDeps, pool: ReviewScreenPool): Promise<Answer> {
  const { review, podName } = screening;
  let ctx: AdmitContext;
  let placement: ReturnType<typeof placePod>;
  try {
    ctx = deps.admitContext();
    placement = placePod(screening.placement, ctx);
  } catch (err) {
    // Answered as an internal error by the caller; the worker need not keep the pod.
    pool.forget(held);
    throw err;
  }
  if (!placement.ok) {
    pool.forget(held);
    return admissionAnswer(review, deps, placement.admission, 1, podName);
  }
  const { placed } = placement;
  // Only what injection needs crosses to the worker; the reservations stay with the ledger.
  const toInject = { choice: placed.choice, reservationId: placed.reservationId, containers: placed.containers, seal: placed.seal };
  const injected = pool.heldBehindLarge(held) ? injectHere(raw, toInject, held, deps, pool) : await pool.inject(held, toInject);
  if (!injected.ok) {
    releasePlacement(ctx.ledger, placed);
    deps.logger.warn({ uid: review.uid, reason: injected.reason, bodyBytes: raw.length }, 'pod placed on the event loop: the worker thread that screened it did not inject it');
    return answerReview(decodeAdmissionReview(parseJsonBody(raw)), deps, null);
  }
  if (!injected.injected.ok) {
    // Refused after the choice (the annotations record it): give the capacity back at once.
    releasePlacement(ctx.ledger, placed);
    return admissionAnswer(review, deps, refusedAsInvalid(injected.injected.message), 1, podName);
  }
  if (placed.reservation !== null) {
    const deadline = admissionDeadline(deps.config.server.admissionTimeoutMs);
    let step: CommitStep;
    try {
      step = await commitPlacement(ctx.ledger, { reservation: placed.reservation, superseded: placed.superseded, choice: placed.choice }, { store: deps.store, signal: deadline.signal });
    } finally {
      deadline.clear();
    }
    if (step.kind === 'refused') return admissionAnswer(review, deps, step.admission, 1, podName);
    if (step.kind === 'conflict') {
      // Lost to another writer: the next attempts are placed here, as admitAndCommit makes them.
      const full = decodeAdmissionReview(parseJsonBody(raw));
      const retried = await placeAndCommit(full, deps, 2);
      return admissionAnswer(full, deps, retried.admission, retried.attempts, retried.podName);
    }
  }
  return mutatedAnswer(review, deps, { choice: placed.choice, reservation: placed.reservation, reinjected: false, patch: injected.injected.patch, warnings: injected.injected.warnings }, 1, podName);
}

/**
 * Inject a pod here that its worker holds behind a large body (tens of milliseconds): screened
 * again from its bytes, as the worker screened it (the same pure steps), and dropped there.
 */
function injectHere(raw: Buffer, placed: PlacementToInject, held: HeldPodHandle, deps: WebhookAppDeps, pool: ReviewScreenPool): PooledInjection {
  pool.forget(held);
  const screening = screenReview(raw, deps.config);
  if (screening.kind !== 'place' || screening.held === undefined) return { ok: false, reason: `screened here, the pod came out ${screening.kind}` };
  return { ok: true, injected: injectHeld(screening.held, placed, deps.config) };
}

async function placeAndCommit(review: AdmissionRequestView, deps: WebhookAppDeps, firstAttempt = 1): Promise<{ admission: PodAdmission; attempts: number; podName: string }> {
  const pod = podOf(review);
  const deadline = admissionDeadline(deps.config.server.admissionTimeoutMs);
  let committed;
  try {
    committed = await admitAndCommit(
      { pod, namespace: review.namespace, requestUid: review.uid, dryRun: review.dryRun },
      deps.admitContext,
      { store: deps.store, maxAttempts: deps.config.cluster.maxCommitAttempts, signal: deadline.signal, firstAttempt },
    );
  } finally {
    deadline.clear();
  }
  if (committed.attempts > 1) deps.metrics.commitConflicts.inc(committed.attempts - 1);
  return { ...committed, podName: podNameForLog(pod) };
}
