/**
 * Reads what a pod asks of the webhook: nothing (skip), the decision it already carries
 * (reinject), or a slot to place. Pure: a pod and configuration in, a typed intent out.
 */
import type { Pod, Container, NodeSelectorTerm, NodeSelectorRequirement } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import { quantityToMiB } from '../config/quantity.js';
import { Priority } from '../placement/types.js';
import type { SlotChoice, SlotRequest } from '../placement/types.js';
import { GPU_MODEL_MAX_LENGTH, parseContainerList, parseGpuModel, parsePriority, parseWholeNumber } from './annotationValues.js';
import { Annotation, HOSTNAME_LABEL, Label, NVIDIA_GPU_RESOURCE } from './names.js';
import { listForMessage, quoteForMessage } from './quoteForMessage.js';

export type PodIntent =
  | { kind: 'skip'; reason: string }
  | { kind: 'reinject'; recorded: RecordedDecision }
  | { kind: 'place'; request: SlotRequest; containers: string[] };

/** A decision the webhook wrote onto a pod earlier, read back from its annotations. */
export interface RecordedDecision {
  /** The slot as recorded. `gpuModel` is '' and `considered` is 0: they are not recorded. */
  choice: SlotChoice;
  reservationId: string;
  /** Containers that got the GPU. */
  containers: string[];
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
  if (annotations[Annotation.Reservation] !== undefined) {
    const recorded = readRecordedDecision(pod);
    if (recorded !== null) return { kind: 'reinject', recorded };
    // Annotations partly present or corrupted: place afresh; the new decision overwrites them.
  }

  const containers = readContainers(annotations[Annotation.Containers], containerNames);
  const request: SlotRequest = {
    podKey: podKeyOf(pod, ctx),
    memoryMiB: readMemoryMiB(annotations[Annotation.GpuMemory], ctx.config),
    threadPercent: readThreadPercent(annotations[Annotation.GpuPercent]),
    priority: readPriority(annotations[Annotation.Priority], pod.spec?.priority, ctx.config),
    gpuModel: readGpuModel(annotations[Annotation.GpuModel]),
    pinnedNode: readPinnedNode(pod),
  };
  return { kind: 'place', request, containers };
}

/**
 * The decision recorded on an injected pod, or null when the annotations are missing,
 * incomplete or do not parse, or name containers the pod does not have.
 */
export function readRecordedDecision(pod: Pod): RecordedDecision | null {
  const a = pod.metadata?.annotations ?? {};
  const reservationId = nonEmpty(a[Annotation.Reservation]);
  const node = nonEmpty(a[Annotation.Node]);
  const gpuUuid = nonEmpty(a[Annotation.GpuUuid]);
  const gpuIndex = parseWholeNumber(a[Annotation.GpuIndex]);
  const threadPercent = parseWholeNumber(a[Annotation.ThreadPercent]);
  const memoryText = a[Annotation.MemoryLimit];
  const memoryLimitMiB = memoryText === undefined ? null : quantityToMiB(memoryText);
  const metricsAgeSeconds = parseWholeNumber(a[Annotation.MetricsAgeSeconds]);
  const reason = a[Annotation.Decision];
  const priority = parsePriority(a[Annotation.Priority]);
  const containers = parseContainerList(a[Annotation.Containers]);
  if (
    reservationId === null ||
    node === null ||
    gpuUuid === null ||
    gpuIndex === null ||
    threadPercent === null ||
    threadPercent < 1 ||
    threadPercent > 100 ||
    memoryLimitMiB === null ||
    metricsAgeSeconds === null ||
    reason === undefined ||
    priority === null ||
    containers.length === 0
  ) {
    return null;
  }
  const podContainers = new Set((pod.spec?.containers ?? []).map((c) => c.name));
  if (!containers.every((name) => podContainers.has(name))) return null;
  return {
    reservationId,
    containers,
    choice: {
      ok: true,
      node,
      gpuUuid,
      gpuIndex,
      gpuModel: '',
      threadPercent,
      memoryLimitMiB,
      priority,
      metricsAgeSeconds,
      considered: 0,
      reason,
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

/** "namespace/name", or "namespace/<generateName><first 8 of the request uid>" for a pod that has no name yet. */
export function podKeyOf(pod: Pod, ctx: Pick<ReadSlotRequestContext, 'namespace' | 'requestUid'>): string {
  const namespace = nonEmpty(ctx.namespace) ?? nonEmpty(pod.metadata?.namespace) ?? 'default';
  const name = nonEmpty(pod.metadata?.name);
  if (name !== null) return `${namespace}/${name}`;
  return `${namespace}/${pod.metadata?.generateName ?? ''}${ctx.requestUid.slice(0, 8)}`;
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
