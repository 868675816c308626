/**
 * The decision record: the annotations the webhook writes on a pod it placed, the one place
 * that writes, reads and verifies them, and the pod identity they are bound to. Pure.
 *
 * Everything a pod creator writes is untrusted, so a record counts (for a reinvocation, the
 * ledger or a rebuild) only when its seal verifies: an HMAC-SHA256, under a key every replica
 * shares, over the fields that grant capacity and the pod they were granted to (namespace,
 * name or generateName, node, GPU, limits, containers, reservation id, issue time).
 * docs/adr/0013-sealed-decisions.md.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { quantityToMiB } from './quantity.js';
import { parseContainerList, parsePriority, parseWholeNumber } from './annotationValues.js';
import { Annotation, Label } from './names.js';
import type { Priority, SlotChoice } from './slot.js';

/** Reservation id written on dry-run admissions, where nothing is reserved. Never held, never counted. */
export const DRY_RUN_RESERVATION = 'dry-run';

/** Annotation that carries the seal: `v1.<key id>.<issued at ms>.<base64url HMAC>`. */
export const SEAL_ANNOTATION = 'mps-injector.io/seal';

/** Every annotation and label the webhook writes to record a decision: a pod creator's copy of any of them is untrusted. */
export const RECORD_ANNOTATIONS: readonly string[] = [
  Annotation.Node,
  Annotation.GpuUuid,
  Annotation.GpuIndex,
  Annotation.ThreadPercent,
  Annotation.ThreadPercentLimit,
  Annotation.MemoryLimit,
  Annotation.Reservation,
  Annotation.MetricsAgeSeconds,
  Annotation.Decision,
  SEAL_ANNOTATION,
];

/** A key that seals decisions; id names it in seals so several can verify during a rotation. */
export interface DecisionKey {
  id: string;
  secret: Buffer;
}

/** The key that seals new decisions, and the keys that still verify (current first). */
export interface DecisionKeyRing {
  current: DecisionKey;
  verifying: readonly DecisionKey[];
}

/** Who a decision was granted to: the pod's namespace and its name, or its generateName before the API server named it. */
export interface PodIdentity {
  namespace: string;
  name: string | null;
  generateName: string | null;
}

/** A decision as the webhook recorded it. */
export interface DecisionRecord {
  pod: PodIdentity;
  reservationId: string;
  node: string;
  gpuUuid: string;
  gpuIndex: number;
  /** Compute share reserved. */
  threadPercent: number;
  /** MPS limit when above threadPercent; absent when equal (and on every record sealed before limits existed). */
  threadCeilingPercent?: number;
  memoryLimitMiB: number;
  priority: Priority;
  containers: string[];
  /** When the webhook issued it, epoch ms. */
  issuedAtMs: number;
  /** Informational, not sealed. */
  metricsAgeSeconds: number;
  reason: string;
}

export type RecordReading =
  /** The pod carries no record (no decision annotation, no seal, no injected label). */
  | { kind: 'none' }
  /** A record the webhook issued for this pod. */
  | { kind: 'genuine'; record: DecisionRecord }
  /** Record annotations or the injected label the webhook did not issue (or issued to another pod); why, in a sentence. */
  | { kind: 'forged'; reason: string };

/** The parts of a pod the record reads (kubernetes-types Pod, the client's V1Pod and watch JSON all fit). */
export interface RecordedPod {
  metadata?: { name?: string; generateName?: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: { containers?: ReadonlyArray<{ name: string }> };
}

/** The identity a pod being admitted or watched has. `namespace` comes from the request when the pod has none. */
export function podIdentityOf(pod: RecordedPod, namespace?: string): PodIdentity {
  return {
    namespace: nonEmpty(namespace) ?? nonEmpty(pod.metadata?.namespace) ?? 'default',
    name: nonEmpty(pod.metadata?.name),
    generateName: nonEmpty(pod.metadata?.generateName),
  };
}

/**
 * The ledger's key for a pod: "namespace/name", or "namespace/<generateName><first 8 of the
 * request uid>" for a pod that has no name yet (the ledger rekeys it to its real name once the
 * pod watch sees it).
 */
export function podKeyOf(identity: PodIdentity, requestUid = ''): string {
  if (identity.name !== null) return `${identity.namespace}/${identity.name}`;
  return `${identity.namespace}/${identity.generateName ?? ''}${requestUid.slice(0, 8)}`;
}

/** The key of a pod the API server stored (it always has a name). */
export function storedPodKey(pod: { metadata?: { namespace?: string; name?: string } }): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/** Random key material for a new key; the id is derived from it. */
export function decisionKeyFrom(secret: Buffer): DecisionKey {
  if (secret.length < 32) throw new RangeError(`a decision key needs at least 32 bytes of secret, got ${secret.length}; generate one with \`openssl rand 32\``);
  const id = createHmac('sha256', secret).update('mps-injector decision key id').digest('hex').slice(0, 8);
  return { id, secret };
}

/** A ring that seals with `current` and also verifies with `previous` (a rotation in progress). */
export function keyRingOf(current: DecisionKey, previous: readonly DecisionKey[] = []): DecisionKeyRing {
  return { current, verifying: [current, ...previous.filter((k) => k.id !== current.id)] };
}

/** A ring with one fresh random key: decisions it seals verify only in this process. */
export function randomKeyRing(): DecisionKeyRing {
  return keyRingOf(decisionKeyFrom(randomBytes(32)));
}

/**
 * A ring from its text form (a key file, or the Secret's `keys` entry): one base64 key of 32 or
 * more bytes per line, the current one first, then the older ones that still verify; blank
 * lines and lines starting with # are ignored. Throws a RangeError that names the line.
 */
export function keyRingFromText(text: string, origin: string): DecisionKeyRing {
  const keys: DecisionKey[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new RangeError(`${origin} line ${i + 1} is not base64; write one key per line, e.g. the output of \`openssl rand -base64 32\``);
    const secret = Buffer.from(trimmed, 'base64');
    if (secret.length < 32) throw new RangeError(`${origin} line ${i + 1} holds ${secret.length} bytes; a decision key needs at least 32 (\`openssl rand -base64 32\`)`);
    keys.push(decisionKeyFrom(secret));
  });
  const [current, ...previous] = keys;
  if (current === undefined) throw new RangeError(`${origin} holds no key; write one base64 key per line, the current one first (\`openssl rand -base64 32\`)`);
  return keyRingOf(current, previous);
}

/** The text form of a ring: the current key first, then the others that verify. */
export function keyRingToText(ring: DecisionKeyRing): string {
  return `${ring.verifying.map((k) => k.secret.toString('base64')).join('\n')}\n`;
}

/**
 * The text HMAC covers: the capacity granted and the pod it was granted to, in a fixed order.
 * A limit above the reserved share is appended; a record without one seals the same text as
 * before limits existed, so decisions sealed then still verify, and adding or removing the
 * limit annotation breaks the seal.
 */
function sealedText(r: Omit<DecisionRecord, 'metricsAgeSeconds' | 'reason'>): string {
  const fields: unknown[] = [
    'v1',
    r.pod.namespace,
    r.pod.name !== null ? 'name' : 'generateName',
    r.pod.name ?? r.pod.generateName ?? '',
    r.reservationId,
    r.node,
    r.gpuUuid,
    r.gpuIndex,
    r.threadPercent,
    r.memoryLimitMiB,
    r.priority,
    r.containers,
    r.issuedAtMs,
  ];
  const ceiling = ceilingAbove(r.threadPercent, r.threadCeilingPercent);
  if (ceiling !== undefined) fields.push(['limit', ceiling]);
  return JSON.stringify(fields);
}

/** The limit when it is above the reserved share, else undefined (one form for "no limit above the grant"). */
function ceilingAbove(threadPercent: number, ceiling: number | undefined): number | undefined {
  return ceiling !== undefined && ceiling > threadPercent ? ceiling : undefined;
}

function mac(key: DecisionKey, text: string): Buffer {
  return createHmac('sha256', key.secret).update(text).digest();
}

/** The seal annotation's value for a record, under the ring's current key. */
export function sealDecision(record: Omit<DecisionRecord, 'metricsAgeSeconds' | 'reason'>, keys: DecisionKeyRing): string {
  return `v1.${keys.current.id}.${record.issuedAtMs}.${mac(keys.current, sealedText(record)).toString('base64url')}`;
}

/**
 * The annotations that record a decision, seal included; `readDecisionRecord` reads them back.
 * The two a user may also write (containers, priority) keep the user's spelling when it means
 * the same ("a, b" for a,b): the seal covers the parsed values, not the spelling.
 */
export function recordAnnotations(
  choice: SlotChoice,
  reservationId: string,
  containers: readonly string[],
  existing: Readonly<Record<string, string>> = {},
  seal?: string,
): Record<string, string> {
  const userContainers = existing[Annotation.Containers];
  const userPriority = existing[Annotation.Priority];
  const sameContainers = userContainers !== undefined && sameList(parseContainerList(userContainers), containers);
  const samePriority = userPriority !== undefined && parsePriority(userPriority) === choice.priority;
  const ceiling = ceilingAbove(choice.threadPercent, choice.threadCeilingPercent);
  const written: Record<string, string> = {
    [Annotation.Node]: choice.node,
    [Annotation.GpuUuid]: choice.gpuUuid,
    [Annotation.GpuIndex]: String(choice.gpuIndex),
    [Annotation.ThreadPercent]: String(choice.threadPercent),
    ...(ceiling !== undefined ? { [Annotation.ThreadPercentLimit]: String(ceiling) } : {}),
    [Annotation.MemoryLimit]: `${choice.memoryLimitMiB}Mi`,
    [Annotation.Priority]: samePriority ? userPriority : choice.priority,
    [Annotation.Containers]: sameContainers ? userContainers : containers.join(','),
    [Annotation.Reservation]: reservationId,
    [Annotation.MetricsAgeSeconds]: String(choice.metricsAgeSeconds),
    [Annotation.Decision]: choice.reason,
  };
  if (seal !== undefined) written[SEAL_ANNOTATION] = seal;
  return written;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** True when the pod carries any record annotation or the injected label: something claims a decision. */
export function claimsDecision(pod: RecordedPod): boolean {
  const a = pod.metadata?.annotations;
  if (a !== undefined && a !== null) for (const name of RECORD_ANNOTATIONS) if (Object.hasOwn(a, name)) return true;
  return pod.metadata?.labels?.[Label.Injected] !== undefined;
}

/**
 * Read and verify the decision a pod carries. `namespace` is the admission request's (a pod
 * being created may not carry its own). Genuine only when every field parses, the containers
 * exist, and the seal verifies under a key of the ring for this pod's namespace and name (or
 * generateName, for a pod the API server named after admission).
 */
export function readDecisionRecord(pod: RecordedPod, keys: DecisionKeyRing, namespace?: string): RecordReading {
  if (!claimsDecision(pod)) return { kind: 'none' };
  const a = pod.metadata?.annotations ?? {};
  const forged = (why: string): RecordReading => ({ kind: 'forged', reason: why });

  const sealText = a[SEAL_ANNOTATION];
  if (sealText === undefined) return forged(`it carries ${describeClaims(pod)} without the webhook's seal`);
  const seal = /^v1\.([0-9a-f]{8})\.([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/.exec(sealText);
  if (seal === null) return forged(`its ${SEAL_ANNOTATION} annotation is not a seal the webhook writes`);
  const [, keyId, issuedText, macText] = seal as unknown as [string, string, string, string];

  const reservationId = nonEmpty(a[Annotation.Reservation]);
  const node = nonEmpty(a[Annotation.Node]);
  const gpuUuid = nonEmpty(a[Annotation.GpuUuid]);
  const gpuIndex = parseWholeNumber(a[Annotation.GpuIndex]);
  const threadPercent = parseWholeNumber(a[Annotation.ThreadPercent]);
  const limitText = a[Annotation.ThreadPercentLimit];
  const threadCeilingPercent = limitText === undefined ? undefined : parseWholeNumber(limitText);
  const memoryText = a[Annotation.MemoryLimit];
  const memoryLimitMiB = memoryText === undefined || memoryText.length > 32 ? null : quantityToMiB(memoryText);
  const priority = parsePriority(a[Annotation.Priority]);
  const containers = parseContainerList(a[Annotation.Containers]);
  if (reservationId === null || reservationId === DRY_RUN_RESERVATION || node === null || gpuUuid === null || gpuIndex === null || threadPercent === null || threadCeilingPercent === null || (threadCeilingPercent !== undefined && (threadCeilingPercent <= threadPercent || threadCeilingPercent > 100)) || memoryLimitMiB === null || priority === null || containers.length === 0) {
    return forged('its decision annotations are incomplete or do not parse');
  }

  const podContainers = new Set((pod.spec?.containers ?? []).map((c) => c.name));
  const missing = containers.filter((name) => !podContainers.has(name));
  if (missing.length > 0) return forged(`its decision names container${missing.length === 1 ? '' : 's'} ${missing.slice(0, 3).map((n) => `"${n}"`).join(', ')} that the pod does not have`);

  const key = keys.verifying.find((k) => k.id === keyId);
  if (key === undefined) return forged(`its seal names key ${keyId}, which this webhook does not hold (forged, or sealed before a key rotation that dropped it)`);

  const identity = podIdentityOf(pod, namespace);
  const record: DecisionRecord = {
    pod: identity,
    reservationId,
    node,
    gpuUuid,
    gpuIndex,
    threadPercent,
    ...(threadCeilingPercent !== undefined ? { threadCeilingPercent } : {}),
    memoryLimitMiB,
    priority,
    containers,
    issuedAtMs: Number(issuedText),
    metricsAgeSeconds: parseWholeNumber(a[Annotation.MetricsAgeSeconds]) ?? 0,
    reason: a[Annotation.Decision] ?? '',
  };
  const expected = Buffer.from(macText, 'base64url');
  // A pod named after admission was sealed under its generateName; try that binding too.
  const bindings: PodIdentity[] = [identity];
  if (identity.name !== null && identity.generateName !== null) bindings.push({ ...identity, name: null });
  for (const pod of bindings) {
    const actual = mac(key, sealedText({ ...record, pod }));
    if (actual.length === expected.length && timingSafeEqual(actual, expected)) return { kind: 'genuine', record: { ...record, pod } };
  }
  return forged(`its seal does not match its decision annotations for ${identity.namespace}/${identity.name ?? identity.generateName ?? ''} (edited, copied from another pod, or forged)`);
}

function describeClaims(pod: RecordedPod): string {
  const a = pod.metadata?.annotations ?? {};
  const names = RECORD_ANNOTATIONS.filter((name) => Object.hasOwn(a, name));
  if (pod.metadata?.labels?.[Label.Injected] !== undefined) names.push(`the ${Label.Injected} label`);
  return names.length === 1 ? (names[0] ?? '') : `${names.length} decision annotations and labels (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`;
}

function nonEmpty(text: string | undefined): string | null {
  const trimmed = text?.trim();
  return trimmed === undefined || trimmed === '' ? null : trimmed;
}
