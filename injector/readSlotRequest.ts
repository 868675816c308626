/**
 * Reads what a pod asks of the webhook: nothing (skip), the decision it already carries
 * (reinject), or a slot to place. Pure: a pod and configuration in, a typed intent out.
 */
import type { Pod, Container, NodeSelectorTerm, NodeSelectorRequirement } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import { quantityToMiB } from '../domain/quantity.js';
import { Priority } from '../domain/slot.js';
import type { PlacementPolicy, SlotChoice, SlotRequest } from '../domain/slot.js';
import { podIdentityOf, podKeyOf as podKeyFromIdentity, readDecisionRecord } from '../domain/decisionRecord.js';
import type { DecisionKeyRing, DecisionRecord } from '../domain/decisionRecord.js';
import { GPU_MODEL_MAX_LENGTH, parseContainerList, parseGpuModel, parseGpuUuidList, parsePlacementPolicy, parsePriority, parseWholeNumber } from '../domain/annotationValues.js';
import { Annotation, HOSTNAME_LABEL, Label, NVIDIA_GPU_RESOURCE } from '../domain/names.js';
import { listForMessage, quoteForMessage } from './quoteForMessage.js';

export type PodIntent =
  | { kind: 'skip'; reason: string }
  | { kind: 'reinject'; recorded: RecordedDecision }
  /** `forged`: the pod carried decision annotations or the injected label the webhook did not issue (why, in a sentence). */
  | { kind: 'place'; request: SlotRequest; containers: string[]; forged: string | null };

/** A decision the webhook issued for this pod earlier, read back from its annotations and verified. */
export interface RecordedDecision {
  /** The slot as recorded. `gpuModel` is '' and `considered` is 0: they are not recorded. */
  choice: SlotChoice;
  reservationId: string;
  /** Containers that got the GPU. */
  containers: string[];
  /** When the webhook issued it, epoch ms. */
  issuedAtMs: number;
}

/** A pod whose annotations cannot be honoured. The message names the annotation, its value and what to write instead. */
export class InvalidPodError extends Error {
  override readonly name = 'InvalidPodError';
  constructor(
    message: string,
    /** The annotation at fault. */
    readonly annotation: string,
  ) {
    super(message);
  }
}

export interface ReadSlotRequestContext {
  /** Namespace of the admission request (a pod being created may not carry its own). */
  namespace: string;
  /** uid of the admission request; names a pod that has only a generateName. */
  requestUid: string;
  config: Config;
  /** Keys that verify recorded decisions. */
  keys: DecisionKeyRing;
}

/** Decide what the webhook must do with a pod being created. Throws InvalidPodError for annotations it cannot honour. */
export function readSlotRequest(pod: Pod, ctx: ReadSlotRequestContext): PodIntent {
  const labels = pod.metadata?.labels ?? {};
  if (labels[Label.PodInject]?.trim().toLowerCase() === 'false') {
    return { kind: 'skip', reason: `pod is labelled ${Label.PodInject}=false` };
  }

  const gpuHolder = findGpuResourceHolder(pod);
  if (gpuHolder !== null) {
    return {
      kind: 'skip',
      reason: `${gpuHolder} requests ${NVIDIA_GPU_RESOURCE} itself, so the device plugin places it; remove that resource to share a GPU through MPS`,
    };
  }

  const containerNames = (pod.spec?.containers ?? []).map((c) => c.name);
  if (containerNames.length === 0) {
    return { kind: 'skip', reason: 'pod has no regular containers to give a GPU' };
  }

  const annotations = pod.metadata?.annotations ?? {};
  const reading = readDecisionRecord(pod, ctx.keys, ctx.namespace);
  if (reading.kind === 'genuine') return { kind: 'reinject', recorded: recordedDecisionOf(reading.record) };

  const containers = readContainers(annotations[Annotation.Containers], containerNames);
  const threadPercent = readThreadPercent(annotations[Annotation.GpuPercent]);
  const threadPercentLimit = readThreadPercentLimit(annotations[Annotation.GpuPercentLimit], threadPercent);
  const request: SlotRequest = {
    podKey: podKeyOf(pod, ctx),
    memoryMiB: readMemoryMiB(annotations[Annotation.GpuMemory], ctx.config),
    threadPercent,
    ...(threadPercentLimit !== null ? { threadPercentLimit } : {}),
    priority: readPriority(annotations[Annotation.Priority], pod.spec?.priority, ctx.config),
    gpuModel: readGpuModel(annotations[Annotation.GpuModel]),
    pinnedNode: readPinnedNode(pod),
    podNamed: nonEmpty(pod.metadata?.name) !== null,
    ...readPlacementHints(annotations, ctx.config),
  };
  return { kind: 'place', request, containers, forged: reading.kind === 'forged' ? reading.reason : null };
}

/** The admission pipeline's view of a verified record. */
export function recordedDecisionOf(record: DecisionRecord): RecordedDecision {
  return {
    reservationId: record.reservationId,
    containers: record.containers,
    issuedAtMs: record.issuedAtMs,
    choice: {
      ok: true,
      node: record.node,
      gpuUuid: record.gpuUuid,
      gpuIndex: record.gpuIndex,
      gpuModel: '',
      threadPercent: record.threadPercent,
      ...(record.threadCeilingPercent !== undefined ? { threadCeilingPercent: record.threadCeilingPercent } : {}),
      memoryLimitMiB: record.memoryLimitMiB,
      priority: record.priority,
      metricsAgeSeconds: record.metricsAgeSeconds,
      considered: 0,
      reason: record.reason,
    },
  };
}

/**
 * The node a pod already pins itself to: `nodeSelector["kubernetes.io/hostname"]`, else a required
 * node affinity whose every term pins the same single host (`kubernetes.io/hostname In [host]`, or the
 * `metadata.name In [node]` field selector that DaemonSet pods carry). Null when not pinned to one node.
 */
export function readPinnedNode(pod: Pod): string | null {
  const fromSelector = nonEmpty(pod.spec?.nodeSelector?.[HOSTNAME_LABEL]);
  if (fromSelector !== null) return fromSelector;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return null;
  const hosts = terms.map(termHost);
  const first = hosts[0];
  if (first === null || first === undefined) return null;
  return hosts.every((h) => h === first) ? first : null;
}

/**
 * The single host a node selector term pins, or null. Requirements within a term are ANDed, so one
 * single-value `In` on the host narrows the term to that host; two different ones match no node.
 */
function termHost(term: NodeSelectorTerm): string | null {
  const pins = new Set<string>();
  const collect = (requirements: NodeSelectorRequirement[] | undefined, key: string): void => {
    for (const r of requirements ?? []) {
      if (r.key !== key || r.operator !== 'In' || r.values?.length !== 1) continue;
      const host = nonEmpty(r.values[0]);
      if (host !== null) pins.add(host);
    }
  };
  collect(term.matchExpressions, HOSTNAME_LABEL);
  collect(term.matchFields, 'metadata.name');
  if (pins.size !== 1) return null;
  const [host] = pins;
  return host ?? null;
}

/** The ledger key of a pod being admitted (domain/decisionRecord.ts owns the rule). */
export function podKeyOf(pod: Pod, ctx: Pick<ReadSlotRequestContext, 'namespace' | 'requestUid'>): string {
  return podKeyFromIdentity(podIdentityOf(pod, ctx.namespace), ctx.requestUid);
}

/** The first container (init or regular) that asks for nvidia.com/gpu, described for a message, or null. */
function findGpuResourceHolder(pod: Pod): string | null {
  const groups: [string, Container[] | undefined][] = [
    ['container', pod.spec?.containers],
    ['init container', pod.spec?.initContainers],
  ];
  for (const [kind, containers] of groups) {
    for (const c of containers ?? []) {
      const requests = c.resources?.requests ?? {};
      const limits = c.resources?.limits ?? {};
      if (NVIDIA_GPU_RESOURCE in requests || NVIDIA_GPU_RESOURCE in limits) return `${kind} "${c.name}"`;
    }
  }
  return null;
}

function readContainers(text: string | undefined, podContainers: string[]): string[] {
  if (text === undefined) return [...podContainers];
  const names = parseContainerList(text);
  const known = (): string => listForMessage(podContainers);
  if (names.length === 0) {
    throw new InvalidPodError(
      `annotation ${Annotation.Containers} is empty; list the containers that get the GPU, separated by commas (this pod has ${known()}), or remove the annotation to give it to all of them`,
      Annotation.Containers,
    );
  }
  const inPod = new Set(podContainers);
  const unknown = names.filter((n) => !inPod.has(n));
  if (unknown.length > 0) {
    throw new InvalidPodError(
      `annotation ${Annotation.Containers}=${quoteForMessage(text)} names ${listForMessage(unknown)}, which ${unknown.length === 1 ? 'is not a container' : 'are not containers'} of this pod; use names among ${known()}`,
      Annotation.Containers,
    );
  }
  return names;
}

function readMemoryMiB(text: string | undefined, config: Config): number {
  if (text === undefined) {
    const mib = quantityToMiB(config.requests.defaultGpuMemory);
    if (mib === null) {
      throw new Error(
        `configuration requests.defaultGpuMemory="${config.requests.defaultGpuMemory}" is not a positive quantity; set it to e.g. "4Gi"`,
      );
    }
    return mib;
  }
  const mib = quantityToMiB(text);
  if (mib === null) {
    throw new InvalidPodError(
      `annotation ${Annotation.GpuMemory}=${quoteForMessage(text)} is not a positive Kubernetes quantity; write the pinned GPU memory the pod needs, e.g. "8Gi", "8192Mi" or "10G"`,
      Annotation.GpuMemory,
    );
  }
  return mib;
}

function readThreadPercent(text: string | undefined): number | null {
  if (text === undefined) return null;
  const value = parseWholeNumber(text);
  if (value === null || value < 1 || value > 100) {
    throw new InvalidPodError(
      `annotation ${Annotation.GpuPercent}=${quoteForMessage(text)} must be a whole number from 1 to 100 (the share of the GPU's compute, e.g. "25"); remove it to let the webhook choose from metrics`,
      Annotation.GpuPercent,
    );
  }
  return value;
}

/** The pod's ceiling on its compute share: 1..100 and at least its gpu-percent; null when it gives none. */
function readThreadPercentLimit(text: string | undefined, asked: number | null): number | null {
  if (text === undefined) return null;
  const value = parseWholeNumber(text);
  if (value === null || value < 1 || value > 100) {
    throw new InvalidPodError(
      `annotation ${Annotation.GpuPercentLimit}=${quoteForMessage(text)} must be a whole number from 1 to 100 (the most of the GPU's compute the pod may use when SMs are idle, e.g. "60"); remove it to use the configured placement.threadCeilingFactor`,
      Annotation.GpuPercentLimit,
    );
  }
  if (asked !== null && value < asked) {
    throw new InvalidPodError(
      `annotation ${Annotation.GpuPercentLimit}=${quoteForMessage(text)} is below ${Annotation.GpuPercent}=${asked}: the limit is a ceiling above the share the pod reserves; set it to at least ${asked}, or remove it`,
      Annotation.GpuPercentLimit,
    );
  }
  return value;
}

function readPriority(text: string | undefined, specPriority: number | undefined, config: Config): Priority {
  if (text === undefined) {
    return (specPriority ?? 0) >= config.requests.highPriorityThreshold ? Priority.High : Priority.Low;
  }
  const priority = parsePriority(text);
  if (priority === null) {
    throw new InvalidPodError(
      `annotation ${Annotation.Priority}=${quoteForMessage(text)} must be "high" or "low"; remove it to derive the priority from the pod's priority class (high at ${config.requests.highPriorityThreshold} and above)`,
      Annotation.Priority,
    );
  }
  return priority;
}

/** The per-pod placement hints; a hint the pod does not give is absent from the result. */
function readPlacementHints(annotations: Record<string, string>, config: Config): Pick<SlotRequest, 'policy' | 'gpuUuidIn' | 'gpuUuidNotIn'> {
  const hints: { policy?: PlacementPolicy; gpuUuidIn?: string[]; gpuUuidNotIn?: string[] } = {};
  const policyText = annotations[Annotation.Policy];
  if (policyText !== undefined) {
    const policy = parsePlacementPolicy(policyText);
    if (policy === null) {
      throw new InvalidPodError(
        `annotation ${Annotation.Policy}="${policyText}" must be "binpack" (fill GPUs already in use) or "spread" (the least loaded GPU); remove it to use the configured placement.policy (${config.placement.policy})`,
        Annotation.Policy,
      );
    }
    hints.policy = policy;
  }
  const uuidIn = readGpuUuids(annotations, Annotation.GpuUuidIn, 'only these GPUs are candidates');
  if (uuidIn !== null) hints.gpuUuidIn = uuidIn;
  const uuidNotIn = readGpuUuids(annotations, Annotation.GpuUuidNotIn, 'these GPUs are never candidates');
  if (uuidNotIn !== null) hints.gpuUuidNotIn = uuidNotIn;
  if (uuidIn !== null && uuidNotIn !== null && uuidIn.every((u) => uuidNotIn.includes(u))) {
    throw new InvalidPodError(
      `annotations ${Annotation.GpuUuidIn}="${annotations[Annotation.GpuUuidIn]}" and ${Annotation.GpuUuidNotIn}="${annotations[Annotation.GpuUuidNotIn]}" together leave no GPU: every listed GPU is also ruled out; remove the UUIDs from one of them`,
      Annotation.GpuUuidIn,
    );
  }
  return hints;
}

function readGpuUuids(annotations: Record<string, string>, annotation: Annotation, meaning: string): string[] | null {
  const text = annotations[annotation];
  if (text === undefined) return null;
  const { uuids, invalid } = parseGpuUuidList(text);
  const how = `write GPU UUIDs as nvidia-smi -L prints them (e.g. "GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d"), separated by commas (${meaning}), or remove the annotation`;
  if (invalid.length > 0) {
    const list = invalid.map((e) => `"${e}"`).join(', ');
    throw new InvalidPodError(`annotation ${annotation}="${text}" lists ${list}, which ${invalid.length === 1 ? 'is not a GPU UUID' : 'are not GPU UUIDs'}; ${how}`, annotation);
  }
  if (uuids.length === 0) throw new InvalidPodError(`annotation ${annotation} is empty; ${how}`, annotation);
  return uuids;
}

function readGpuModel(text: string | undefined): string | null {
  if (nonEmpty(text) === null) return null;
  const model = parseGpuModel(text);
  if (model === null) {
    throw new InvalidPodError(
      `annotation ${Annotation.GpuModel}=${quoteForMessage(text ?? '')} is not a GPU model name: write up to ${GPU_MODEL_MAX_LENGTH} letters, digits, spaces and . _ - + / ( ) that the model name contains, e.g. "H100" or "A100-SXM4-80GB"`,
      Annotation.GpuModel,
    );
  }
  return model;
}

function nonEmpty(text: string | undefined): string | null {
  const trimmed = text?.trim();
  return trimmed === undefined || trimmed === '' ? null : trimmed;
}
