/**
 * MPS access only through the injector. A pod reaches the node's MPS daemon (and the GPUs behind
 * it) only in the containers mps-injector selects, with the env, pipe and shm mounts it injects.
 * Found and refused (or stripped, by configuration):
 *
 * - env: a container the webhook did not select, an init container or an ephemeral container
 *   that sets CUDA_MPS_* or NVIDIA_VISIBLE_DEVICES in `env` (whatever the value's source);
 * - host-path: a hostPath volume at, under or above the node's MPS pipe or shm directory
 *   (compared by path segment, `.`/`..`/repeated and trailing slashes normalised, /var/run taken
 *   as /run), other than the volumes injection itself adds;
 * - injected-volume-mount: one of injection's own volumes mounted by a container it did not select;
 * - pipe-shadowed: a selected container that mounts anything at or under the container pipe
 *   directory, which would hide the injected pipe (the client then runs without MPS, unlimited).
 *
 * Not seen: variables that `envFrom` brings from a ConfigMap or Secret (their keys are not in the
 * pod), and variables baked into the image (CUDA images set NVIDIA_VISIBLE_DEVICES=all). Those
 * are for the node's container runtime to refuse: see docs/security.md.
 *
 * Pure: a pod, the selected containers and the injection settings in; findings, or a pod without
 * them, out. Never mutates its input.
 */
import type { Container, Pod, PodSpec, Volume } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import { isHostPath } from './injectPod.js';
import { Env, INIT_CONTAINER_NAME, VolumeName } from '../domain/names.js';

export const MpsAccessPolicy = {
  /** Refuse the pod, naming every offending container and volume. */
  Reject: 'reject',
  /** Remove the offending env entries, volumes and mounts, with a warning for each. */
  Strip: 'strip',
} as const;
export type MpsAccessPolicy = (typeof MpsAccessPolicy)[keyof typeof MpsAccessPolicy];

/** The kind of container a finding names, as it reads in a message. */
export type ContainerKind = 'container' | 'init container' | 'ephemeral container';

export interface ContainerRef {
  kind: ContainerKind;
  name: string;
}

/** Which MPS directory of the node a hostPath reaches. */
export type MpsDirectory = 'pipe' | 'shm';

export type MpsAccessFinding =
  | { kind: 'env'; container: ContainerRef; names: string[] }
  | { kind: 'host-path'; volume: string; path: string; relation: 'at' | 'under' | 'above'; directory: MpsDirectory; directoryPath: string }
  | { kind: 'injected-volume-mount'; container: ContainerRef; volume: string; mountPath: string; directory: MpsDirectory }
  | { kind: 'pipe-shadowed'; container: ContainerRef; volume: string; mountPath: string };

export type MpsAccessCheck =
  | { ok: true; pod: Pod; warnings: readonly string[] }
  | { ok: false; message: string; findings: MpsAccessFinding[] };

export interface MpsAccessOptions {
  /**
   * True when the webhook is about to inject the pod (place or reinject): then injection's own
   * volumes and its wait-for-MPS init container (which injection replaces) are allowed, and the
   * policy applies. False for a pod the webhook leaves alone: then nothing may reach MPS, and
   * such a pod is always refused, since no patch is sent that could strip it.
   */
  injecting: boolean;
}

/** Findings and messages list at most this many; the rest are counted. */
const MAX_LISTED = 8;
const NO_WARNINGS: readonly string[] = Object.freeze([]);

/** True for a variable that steers an MPS client or a GPU's visibility. */
export function isMpsAccessVariable(name: string): boolean {
  return name.startsWith('CUDA_MPS_') || name === Env.VisibleDevices;
}

/** Check `pod` and apply the policy: the pod to inject (unchanged when clean) and warnings, or a refusal. */
export function enforceMpsAccess(
  pod: Pod,
  selected: readonly string[],
  config: Config['injection'],
  opts: MpsAccessOptions,
): MpsAccessCheck {
  const findings = findMpsAccessProblems(pod, selected, config, opts);
  if (findings.length === 0) return { ok: true, pod, warnings: NO_WARNINGS };
  if (!opts.injecting || config.mpsAccessPolicy === MpsAccessPolicy.Reject) {
    return { ok: false, message: refusalMessage(findings, opts), findings };
  }
  return { ok: true, pod: stripFindings(pod, findings), warnings: listWithCap(findings.map(describeStripped), 'more were removed') };
}

/** Every way `pod` reaches MPS around the injector; [] when there is none. */
export function findMpsAccessProblems(
  pod: Pod,
  selected: readonly string[],
  config: Config['injection'],
  opts: MpsAccessOptions,
): MpsAccessFinding[] {
  const spec = pod.spec;
  if (spec === undefined) return [];
  const findings: MpsAccessFinding[] = [];
  const selectedNames = new Set(opts.injecting ? selected : []);
  const isSelected = (ref: ContainerRef): boolean => ref.kind === 'container' && selectedNames.has(ref.name);
  // Injection replaces an init container of this name with its own.
  const isReplacedByInjection = (ref: ContainerRef): boolean => opts.injecting && ref.kind === 'init container' && ref.name === INIT_CONTAINER_NAME;

  forEachContainer(spec, (kind, container) => {
    const env = container.env;
    if (!Array.isArray(env) || env.length === 0) return;
    const ref: ContainerRef = { kind, name: container.name };
    if (isSelected(ref) || isReplacedByInjection(ref)) return;
    const names = env.map((e) => e.name).filter((name) => typeof name === 'string' && isMpsAccessVariable(name));
    if (names.length > 0) findings.push({ kind: 'env', container: ref, names: [...new Set(names)] });
  });

  const directories: [MpsDirectory, string][] = [
    ['pipe', config.hostPipeDirectory],
    ['shm', config.hostShmDirectory],
  ];
  const injectionVolumes = new Map<string, MpsDirectory>();
  for (const volume of spec.volumes ?? []) {
    const hostPath = volume.hostPath?.path;
    if (typeof hostPath !== 'string') continue;
    const own = opts.injecting ? injectionVolumeKind(volume, config) : null;
    if (own !== null) {
      injectionVolumes.set(volume.name, own);
      continue;
    }
    for (const [directory, directoryPath] of directories) {
      const relation = pathRelation(hostPath, directoryPath);
      if (relation === null) continue;
      findings.push({ kind: 'host-path', volume: volume.name, path: hostPath, relation, directory, directoryPath });
      break;
    }
  }

  if (opts.injecting) {
    forEachContainer(spec, (kind, container) => {
      const mounts = container.volumeMounts;
      if (!Array.isArray(mounts) || mounts.length === 0) return;
      const ref: ContainerRef = { kind, name: container.name };
      const selectedHere = isSelected(ref);
      for (const mount of mounts) {
        const own = injectionVolumes.get(mount.name);
        if (own !== undefined && !selectedHere && !isReplacedByInjection(ref)) {
          findings.push({ kind: 'injected-volume-mount', container: ref, volume: mount.name, mountPath: mount.mountPath, directory: own });
        }
        if (selectedHere && own !== 'pipe' && isAtOrUnder(mount.mountPath, config.containerPipeDirectory)) {
          findings.push({ kind: 'pipe-shadowed', container: ref, volume: mount.name, mountPath: mount.mountPath });
        }
      }
    });
  }
  return findings;
}

/** One clause naming the container or volume and what it does. */
export function describeMpsAccessFinding(finding: MpsAccessFinding): string {
  switch (finding.kind) {
    case 'env':
      return `${describeRef(finding.container)}${notSelected(finding.container)} sets ${finding.names.join(', ')}`;
    case 'host-path': {
      const where = finding.relation === 'at' ? 'the node\'s' : `${finding.relation} the node's`;
      const directory = finding.relation === 'at' ? directoryWords(finding.directory) : `${directoryWords(finding.directory)} ${finding.directoryPath}`;
      return `volume "${finding.volume}" is a hostPath at ${finding.path}, ${where} ${directory}`;
    }
    case 'injected-volume-mount':
      return `${describeRef(finding.container)}${notSelected(finding.container)} mounts the ${directoryWords(finding.directory)} volume "${finding.volume}" at ${finding.mountPath}`;
    case 'pipe-shadowed':
      return `${describeRef(finding.container)} mounts volume "${finding.volume}" at ${finding.mountPath}, over the MPS pipe directory mps-injector mounts there (its MPS clients would run without the daemon's limits)`;
  }
}

function describeStripped(finding: MpsAccessFinding): string {
  const why = `(injection.mpsAccessPolicy "strip": ${describeMpsAccessFinding(finding)})`;
  switch (finding.kind) {
    case 'env':
      return `${describeRef(finding.container)}: removed env ${finding.names.join(', ')} ${why}`;
    case 'host-path':
      return `removed volume "${finding.volume}" and every mount of it ${why}`;
    case 'injected-volume-mount':
    case 'pipe-shadowed':
      return `${describeRef(finding.container)}: removed its mount of volume "${finding.volume}" at ${finding.mountPath} ${why}`;
  }
}

function refusalMessage(findings: MpsAccessFinding[], opts: MpsAccessOptions): string {
  const clauses = listWithCap(findings.map(describeMpsAccessFinding), 'more');
  const advice = opts.injecting
    ? 'Remove them: mps-injector gives the containers it selects (every regular container, or those named in the mps-injector.io/containers annotation) the MPS env and mounts itself, and no other container may reach MPS.'
    : 'mps-injector does not inject this pod, so none of its containers may reach MPS: remove them.';
  return `mps-injector refuses this pod because it reaches the node's MPS daemon around the injector: ${clauses.join('; ')}. ${advice}`;
}

function listWithCap(items: string[], moreWords: string): string[] {
  if (items.length <= MAX_LISTED) return items;
  return [...items.slice(0, MAX_LISTED), `(and ${items.length - MAX_LISTED} ${moreWords})`];
}

function describeRef(ref: ContainerRef): string {
  return `${ref.kind} "${ref.name}"`;
}

function notSelected(ref: ContainerRef): string {
  return ref.kind === 'container' ? ' (not selected for the GPU)' : '';
}

function directoryWords(directory: MpsDirectory): string {
  return directory === 'pipe' ? 'MPS pipe directory' : 'MPS shm directory';
}

function forEachContainer(spec: PodSpec, visit: (kind: ContainerKind, container: Container) => void): void {
  for (const c of spec.containers ?? []) visit('container', c);
  for (const c of spec.initContainers ?? []) visit('init container', c);
  for (const c of spec.ephemeralContainers ?? []) visit('ephemeral container', c as Container);
}

const INJECTED_NAME: Record<MpsDirectory, RegExp> = {
  pipe: new RegExp(`^${VolumeName.Pipe}(-[0-9]+)?$`),
  shm: new RegExp(`^${VolumeName.Shm}(-[0-9]+)?$`),
};

/** 'pipe' or 'shm' when `volume` is exactly a volume injection adds (or reuses), else null. */
function injectionVolumeKind(volume: Volume, config: Config['injection']): MpsDirectory | null {
  if (INJECTED_NAME.pipe.test(volume.name) && isHostPath(volume, { path: config.hostPipeDirectory, type: 'Directory' })) return 'pipe';
  if (config.mountShm && INJECTED_NAME.shm.test(volume.name) && isHostPath(volume, { path: config.hostShmDirectory, type: 'Directory' })) return 'shm';
  return null;
}

/** Path segments after normalisation: empty and `.` segments dropped, `..` taken back (never above /). */
export function pathSegments(path: string): string[] {
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return out;
}

/** The spellings of one node directory: /var/run is a link to /run on every mainstream distribution. */
function nodeSpellings(segments: string[]): string[][] {
  if (segments[0] === 'run') return [segments, ['var', ...segments]];
  if (segments[0] === 'var' && segments[1] === 'run') return [segments, segments.slice(1)];
  return [segments];
}

/** Where `path` lies relative to `directory` on the node: at it, under it, above it, or apart (null). */
export function pathRelation(path: string, directory: string): 'at' | 'under' | 'above' | null {
  for (const p of nodeSpellings(pathSegments(path))) {
    for (const d of nodeSpellings(pathSegments(directory))) {
      const relation = segmentRelation(p, d);
      if (relation !== null) return relation;
    }
  }
  return null;
}

function segmentRelation(path: string[], directory: string[]): 'at' | 'under' | 'above' | null {
  const shared = Math.min(path.length, directory.length);
  for (let i = 0; i < shared; i += 1) if (path[i] !== directory[i]) return null;
  if (path.length === directory.length) return 'at';
  return path.length > directory.length ? 'under' : 'above';
}

function isAtOrUnder(path: string, directory: string): boolean {
  const p = pathSegments(path);
  const d = pathSegments(directory);
  const relation = segmentRelation(p, d);
  return relation === 'at' || relation === 'under';
}

/** A copy of `pod` without what the findings name. */
function stripFindings(pod: Pod, findings: MpsAccessFinding[]): Pod {
  const out = structuredClone(pod);
  const spec = out.spec as PodSpec;
  const listOf = (kind: ContainerKind): Container[] =>
    kind === 'container' ? spec.containers : kind === 'init container' ? (spec.initContainers ?? []) : ((spec.ephemeralContainers ?? []) as Container[]);
  const each = (ref: ContainerRef, change: (c: Container) => void): void => {
    for (const c of listOf(ref.kind)) if (c.name === ref.name) change(c);
  };
  for (const finding of findings) {
    switch (finding.kind) {
      case 'env': {
        const names = new Set(finding.names);
        each(finding.container, (c) => {
          c.env = (c.env ?? []).filter((e) => !names.has(e.name));
          if (c.env.length === 0) delete c.env;
        });
        break;
      }
      case 'host-path':
        spec.volumes = (spec.volumes ?? []).filter((v) => v.name !== finding.volume);
        if (spec.volumes.length === 0) delete spec.volumes;
        for (const kind of ['container', 'init container', 'ephemeral container'] as const) {
          for (const c of listOf(kind)) dropMounts(c, (m) => m.name === finding.volume);
        }
        break;
      case 'injected-volume-mount':
      case 'pipe-shadowed':
        each(finding.container, (c) => dropMounts(c, (m) => m.name === finding.volume && m.mountPath === finding.mountPath));
        break;
    }
  }
  return out;
}

function dropMounts(container: Container, matches: (mount: { name: string; mountPath: string }) => boolean): void {
  if (!Array.isArray(container.volumeMounts)) return;
  container.volumeMounts = container.volumeMounts.filter((m) => !matches(m));
  if (container.volumeMounts.length === 0) delete container.volumeMounts;
}
