/**
 * Applies a placement decision to a pod: MPS client env, pipe and shm mounts, the wait-for-MPS init
 * container, the node selector, tolerations and the annotations that record the decision.
 * Pure and idempotent: injecting an injected pod again with the same decision changes nothing.
 */
import type { Container, EnvVar, HostPathVolumeSource, Pod, PodSpec, Toleration, Volume } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import { Priority } from '../domain/slot.js';
import type { SlotChoice } from '../domain/slot.js';
import { recordAnnotations } from '../domain/decisionRecord.js';
import { Annotation, Env, HOSTNAME_LABEL, INIT_CONTAINER_NAME, Label, SHM_MOUNT_PATH, VolumeName } from '../domain/names.js';
import { buildWaitForMpsContainer } from './waitForMpsContainer.js';

export interface InjectionResult {
  /**
   * The injected pod: a new object along every path injection writes, sharing everything else
   * (other containers, the pod's own volumes, managedFields, ...) with the input. Treat both as
   * immutable.
   */
  pod: Pod;
  /** Things the pod owner should know: replaced env, kept mounts, a changed node selector. One sentence each. */
  warnings: string[];
}

/** Inject `choice` into the named regular containers of a copy of `pod`. Never mutates its input. */
export function injectPod(
  pod: Pod,
  choice: SlotChoice,
  reservationId: string,
  containers: string[],
  config: Config['injection'],
  /** The decision's seal (domain/decisionRecord.ts); written with the record when given. */
  seal?: string,
): InjectionResult {
  const selected = new Set(containers);
  const out = copyWritablePaths(pod, selected);
  const warnings: string[] = [];
  const spec: PodSpec = (out.spec ??= { containers: [] });
  // The first container of each name, as a lookup by name would find it: one pass over the pod.
  const byName = new Map<string, Container>();
  for (const c of spec.containers) if (selected.has(c.name) && !byName.has(c.name)) byName.set(c.name, c);

  const pipeVolume = resolveVolume(spec, VolumeName.Pipe, { path: config.hostPipeDirectory, type: 'Directory' });
  const shmVolume = resolveVolume(spec, VolumeName.Shm, { path: config.hostShmDirectory, type: 'Directory' });
  let shmUsed = false;

  const env = mpsEnv(choice, config);
  for (const name of containers) {
    const container = byName.get(name);
    if (container === undefined) {
      warnings.push(`container "${name}" was selected for the GPU but is not in the pod, so nothing was injected into it; check the ${Annotation.Containers} annotation`);
      continue;
    }
    setEnv(container, env, warnings);
    mountVolume(container, pipeVolume.volume.name, config.containerPipeDirectory, 'the MPS pipe directory', warnings);
    if (config.mountShm) {
      shmUsed = mountVolume(container, shmVolume.volume.name, SHM_MOUNT_PATH, "the MPS daemon's shm directory", warnings) || shmUsed;
    }
  }

  // The pipe volume is always used: the init container mounts it.
  addVolume(spec, pipeVolume);
  if (shmUsed) addVolume(spec, shmVolume);

  const waitForMps = buildWaitForMpsContainer(choice.node, pipeVolume.volume.name, config);
  spec.initContainers = [waitForMps, ...(spec.initContainers ?? []).filter((c) => c.name !== INIT_CONTAINER_NAME)];

  pinNode(spec, choice.node, warnings);
  addTolerations(spec, config.tolerations);

  const metadata = (out.metadata ??= {});
  // Null maps (absent, to the API server) are read as empty ones.
  const annotations = metadata.annotations ?? undefined;
  metadata.annotations = copyOf(annotations, recordAnnotations(choice, reservationId, containers, annotations, seal));
  metadata.labels = copyOf(metadata.labels ?? undefined, { [Label.Injected]: 'true' });

  return { pod: out, warnings };
}

/**
 * A copy of `pod` that injection can write to without touching the input: new objects and arrays
 * along each path it changes (metadata, spec, the selected containers with their
 * env and volumeMounts, volumes, nodeSelector, tolerations); everything else is shared. Injection
 * replaces or appends entries and never edits one in place, so copying the holders is enough. This
 * is several times cheaper than a deep copy of the pod, which is most of a pod's size in memory.
 */
function copyWritablePaths(pod: Pod, containers: ReadonlySet<string>): Pod {
  // metadata.annotations is replaced as a whole, so metadata itself is the holder to copy.
  const out: Pod = copyOf(pod, { metadata: copyOf(pod.metadata) });
  const spec = pod.spec;
  if (spec === undefined) return out;
  const copy = copyOf(spec);
  if (Array.isArray(spec.containers)) copy.containers = spec.containers.map((c) => (containers.has(c.name) ? copyContainer(c) : c));
  // Absent and null (an empty field in YAML) both read as "none"; injection replaces them.
  if (Array.isArray(spec.volumes)) copy.volumes = [...spec.volumes];
  if (spec.nodeSelector != null) copy.nodeSelector = copyOf(spec.nodeSelector);
  if (Array.isArray(spec.tolerations)) copy.tolerations = [...spec.tolerations];
  out.spec = copy;
  return out;
}

function copyContainer(container: Container): Container {
  const copy = copyOf(container);
  if (Array.isArray(container.env)) copy.env = [...container.env];
  if (Array.isArray(container.volumeMounts)) copy.volumeMounts = [...container.volumeMounts];
  return copy;
}

/**
 * A shallow copy of `value` with the entries of `extra` added: what `{ ...value, ...extra }` gives.
 * Built with Object.assign because V8 gives a spread copy of a parsed object that then gets new
 * keys fresh hidden classes on every call: measured, about 2 kB per admission that outlives the
 * young generation and piles up in the old one under load. An own "__proto__" key (only
 * JSON.parse makes one) would become a prototype change under Object.assign, so such an object
 * is spread instead.
 */
function copyOf<T extends object>(value: T | undefined, extra: Partial<T> = {}): T {
  if ((value !== undefined && Object.hasOwn(value, '__proto__')) || Object.hasOwn(extra, '__proto__')) return { ...value, ...extra } as T;
  return Object.assign({}, value, extra) as T;
}

/**
 * The MPS client env of a selected container. The pinned memory limit names the GPU by ordinal 0 when
 * NVIDIA_VISIBLE_DEVICES narrows the container to the chosen GPU, and by UUID otherwise (the container
 * may then see several GPUs, and ordinal 0 need not be the chosen one).
 */
export function mpsEnv(choice: SlotChoice, config: Config['injection']): { name: Env; value: string }[] {
  const device = config.setVisibleDevices ? '0' : choice.gpuUuid;
  const env: { name: Env; value: string }[] = [
    { name: Env.PipeDirectory, value: config.containerPipeDirectory },
    // The MPS limit: a ceiling on the SMs the client may use, at or above the reserved share.
    { name: Env.ThreadPercentage, value: String(Math.max(choice.threadPercent, choice.threadCeilingPercent ?? 0)) },
    { name: Env.PinnedMemLimit, value: `${device}=${choice.memoryLimitMiB}M` },
  ];
  if (config.setVisibleDevices) env.push({ name: Env.VisibleDevices, value: choice.gpuUuid });
  env.push({ name: Env.ClientPriority, value: choice.priority === Priority.High ? '0' : '1' });
  return env;
}

/**
 * Set each variable: replace every entry of that name in place (warning when its value differs),
 * else append. One pass over the container's env, however long it is; the warnings come in the
 * order of the variables set.
 */
function setEnv(container: Container, wanted: { name: string; value: string }[], warnings: string[]): void {
  const env: EnvVar[] = (container.env ??= []);
  const valueOf = new Map(wanted.map(({ name, value }) => [name, value]));
  // The first characters of the names set: most of a long env is ruled out without hashing its name.
  const firstChars = new Set(wanted.map(({ name }) => name.charCodeAt(0)));
  const replaced = new Map<string, string[]>();
  for (let i = 0; i < env.length; i++) {
    const entry = env[i]!;
    if (!firstChars.has(entry.name.charCodeAt(0))) continue;
    const value = valueOf.get(entry.name);
    if (value === undefined) continue;
    const said = replaced.get(entry.name) ?? [];
    replaced.set(entry.name, said);
    if (entry.value === value && entry.valueFrom === undefined) continue;
    said.push(
      `container "${container.name}": env ${entry.name} was ${describeEnvValue(entry)}, replaced by "${value}" (mps-injector sets it from the GPU reservation; remove it from the pod spec to silence this warning)`,
    );
    env[i] = { name: entry.name, value };
  }
  for (const { name, value } of wanted) {
    const said = replaced.get(name);
    if (said === undefined) env.push({ name, value });
    else warnings.push(...said);
  }
}

function describeEnvValue(entry: EnvVar): string {
  if (entry.valueFrom !== undefined) {
    const sources = Object.keys(entry.valueFrom).join('/');
    return `taken from ${sources === '' ? 'valueFrom' : `valueFrom.${sources}`}`;
  }
  return `"${entry.value ?? ''}"`;
}

/**
 * Mount `volumeName` at `mountPath` unless the container already mounts something there: then its own
 * mount stays (two mounts at one path make the pod invalid) and a warning says so. True when the
 * container mounts `volumeName` there afterwards.
 */
function mountVolume(container: Container, volumeName: string, mountPath: string, what: string, warnings: string[]): boolean {
  const mounts = (container.volumeMounts ??= []);
  const existing = mounts.find((m) => samePath(m.mountPath, mountPath));
  if (existing === undefined) {
    mounts.push({ name: volumeName, mountPath });
    return true;
  }
  if (existing.name === volumeName) return true;
  warnings.push(
    `container "${container.name}" already mounts volume "${existing.name}" at ${existing.mountPath}, so ${what} was not mounted there; MPS clients in it may not reach the daemon unless that mount provides it`,
  );
  return false;
}

function samePath(a: string, b: string): boolean {
  const normalise = (p: string): string => p.replace(/\/+$/, '') || '/';
  return normalise(a) === normalise(b);
}

interface ResolvedVolume {
  volume: Volume;
  /** The pod already holds this exact volume (an earlier injection). */
  present: boolean;
}

/**
 * The volume to use for a hostPath: the preferred name when free or already holding this hostPath,
 * else the first of name-2, name-3, ... that is.
 */
function resolveVolume(spec: PodSpec, preferred: string, hostPath: HostPathVolumeSource): ResolvedVolume {
  const volumes = spec.volumes ?? [];
  for (let n = 1; ; n += 1) {
    const name = n === 1 ? preferred : `${preferred}-${n}`;
    const existing = volumes.find((v) => v.name === name);
    if (existing === undefined) return { volume: { name, hostPath: { ...hostPath } }, present: false };
    if (isHostPath(existing, hostPath)) return { volume: existing, present: true };
  }
}

/** True when `volume` is exactly this hostPath and nothing else (the shape injection adds). */
export function isHostPath(volume: Volume, hostPath: HostPathVolumeSource): boolean {
  const keys = Object.keys(volume).filter((k) => k !== 'name');
  return keys.length === 1 && volume.hostPath?.path === hostPath.path && (volume.hostPath.type ?? '') === (hostPath.type ?? '');
}

function addVolume(spec: PodSpec, resolved: ResolvedVolume): void {
  if (resolved.present) return;
  (spec.volumes ??= []).push(resolved.volume);
}

function pinNode(spec: PodSpec, node: string, warnings: string[]): void {
  const selector = (spec.nodeSelector ??= {});
  const previous = selector[HOSTNAME_LABEL];
  if (previous !== undefined && previous !== node) {
    warnings.push(`nodeSelector ${HOSTNAME_LABEL} was "${previous}", set to "${node}" where the GPU is reserved`);
  }
  selector[HOSTNAME_LABEL] = node;
}

/** Append the configured tolerations the pod does not already have (compared with Kubernetes defaults filled in). */
function addTolerations(spec: PodSpec, tolerations: Toleration[]): void {
  for (const toleration of tolerations) {
    const present = (spec.tolerations ?? []).some((t) => sameToleration(t, toleration));
    if (!present) (spec.tolerations ??= []).push(structuredClone(toleration));
  }
}

function sameToleration(a: Toleration, b: Toleration): boolean {
  const norm = (t: Toleration): string =>
    JSON.stringify([t.key ?? '', t.operator ?? 'Equal', t.value ?? '', t.effect ?? '', t.tolerationSeconds ?? null]);
  return norm(a) === norm(b);
}
