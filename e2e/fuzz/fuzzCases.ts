/**
 * A seeded generator of hostile AdmissionReviews, made by mutating the captured reviews in
 * e2e/testdata: deleted fields, swapped types, deep nesting, __proto__/constructor keys, huge
 * strings, invalid UTF-8, bodies just under and over the size cap, 1,000 containers, odd
 * quantities and annotations near the API server's size limit. The same seed gives the same
 * cases, byte for byte.
 */
import { mulberry32 } from '../../simulate/seededRandom.js';
import type { UniformSource } from '../../simulate/seededRandom.js';
import { loadCapturedReview } from '../support/reviews.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface FuzzCase {
  index: number;
  /** What was done to the captured review, for the report of a failing case. */
  mutations: string[];
  body: Buffer;
}

export interface FuzzOptions {
  seed: number;
  /** The server's server.maxBodyBytes: cases just under and over it are generated. */
  maxBodyBytes: number;
}

/** The API server's limit on the total size of a pod's annotations (keys plus values, bytes). */
const TOTAL_ANNOTATION_BYTES = 256 * 1024;

const SAMPLES = ['v1-pod-create-kubectl.json.txt', 'v1beta1-pod-create-replicaset-generatename.json.txt'] as const;

/** Quantities that must never reach placement as a number that is not a finite positive MiB figure. */
const ODD_QUANTITIES = ['1e400Gi', '-1Gi', '0', '9999999Ti', 'NaN', 'Infinity', '1e3', '0.0000001Mi', '1Ei', '', ' ', '08Gi', '8 Gi', '+8Gi', '0x10Gi', `${'9'.repeat(400)}Gi`, '1.5.5Gi', '٣Gi'];
const ODD_PERCENTS = ['0', '101', '-1', 'NaN', '50.5', '1e2', ' 25 ', '99999999999', '', '٣'];
const ODD_PRIORITIES = ['HIGH', 'medium', '', 'high\u0000', '1000'];
const SPECIAL_KEYS = ['__proto__', 'constructor', 'prototype', 'toJSON', 'hasOwnProperty', 'valueOf'];
const USER_ANNOTATIONS = ['mps-injector.io/gpu-memory', 'mps-injector.io/gpu-percent', 'mps-injector.io/containers', 'mps-injector.io/gpu-model', 'mps-injector.io/priority', 'mps-injector.io/reservation'];

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Raw JSON text spliced in place of a marker string after serialisation (things JSON.stringify cannot write). */
interface Splice {
  marker: string;
  raw: Buffer;
}

class CaseBuilder {
  readonly mutations: string[] = [];
  readonly splices: Splice[] = [];

  constructor(
    readonly review: JsonObject,
    readonly rnd: UniformSource,
  ) {}

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  get request(): JsonObject | null {
    const r = this.review.request;
    return isObject(r) ? r : null;
  }

  get pod(): JsonObject | null {
    const o = this.request?.object;
    return isObject(o) ? o : null;
  }

  annotations(): JsonObject | null {
    const metadata = this.pod?.metadata;
    if (!isObject(metadata)) return null;
    if (!isObject(metadata.annotations)) metadata.annotations = {};
    return metadata.annotations as JsonObject;
  }

  /** A marker string to place where raw JSON text goes. */
  splice(raw: Buffer | string): string {
    const marker = `@@fuzz-splice-${this.splices.length}@@`;
    this.splices.push({ marker, raw: Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8') });
    return marker;
  }

  body(): Buffer {
    let body = Buffer.from(JSON.stringify(this.review), 'utf8');
    for (const { marker, raw } of this.splices) {
      const quoted = Buffer.from(JSON.stringify(marker), 'utf8');
      const at = body.indexOf(quoted);
      if (at < 0) continue;
      body = Buffer.concat([body.subarray(0, at), raw, body.subarray(at + quoted.length)]);
    }
    return body;
  }
}

/** Every path (list of keys) into the review, the pod's paths first; bounded. */
function pathsOf(value: Json, limit = 4000): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (v: Json, path: (string | number)[]): void => {
    if (out.length >= limit) return;
    if (path.length > 0) out.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  return out;
}

function parentOf(root: Json, path: (string | number)[]): { holder: JsonObject | Json[]; key: string | number } | null {
  let v: Json = root;
  for (const key of path.slice(0, -1)) {
    if (Array.isArray(v) && typeof key === 'number') v = v[key] ?? null;
    else if (isObject(v) && typeof key === 'string') v = v[key] ?? null;
    else return null;
  }
  const key = path[path.length - 1]!;
  if (Array.isArray(v) || isObject(v)) return { holder: v, key };
  return null;
}

/** A random path, three times in four inside request.object. */
function randomPath(b: CaseBuilder): (string | number)[] | null {
  const inPod = b.rnd() < 0.75 && b.pod !== null;
  const paths = inPod ? pathsOf(b.pod!).map((p) => ['request', 'object', ...p]) : pathsOf(b.review);
  return paths.length === 0 ? null : b.pick(paths);
}

function setAt(b: CaseBuilder, path: (string | number)[], value: Json | undefined): boolean {
  const at = parentOf(b.review, path);
  if (at === null) return false;
  if (Array.isArray(at.holder)) {
    if (typeof at.key !== 'number') return false;
    if (value === undefined) at.holder.splice(at.key, 1);
    else at.holder[at.key] = value;
  } else if (value === undefined) {
    delete at.holder[String(at.key)];
  } else {
    at.holder[String(at.key)] = value;
  }
  return true;
}

const show = (path: (string | number)[]): string => path.join('.');

function hugeString(b: CaseBuilder): string {
  const size = b.pick([64 * 1024, 100 * 1024, 300 * 1024, 1024 * 1024]);
  const unit = b.pick(['a', 'é', '\u{1F600}', '(', 'a,', '\\', '"', ' ']);
  return unit.repeat(Math.ceil(size / Buffer.byteLength(unit)));
}

function otherTypeValue(b: CaseBuilder, current: Json | undefined): Json {
  const options: Json[] = [0, -1, 1e308, 1.5, '', 'text', true, false, null, [], [1, 'a'], {}, { a: 1 }];
  let value = b.pick(options);
  for (let i = 0; i < 5 && typeof value === typeof current && Array.isArray(value) === Array.isArray(current); i++) value = b.pick(options);
  return value;
}

/** The mutations, each a small function of the case being built. */
const MUTATIONS: { name: string; weight: number; apply: (b: CaseBuilder) => string | null }[] = [
  {
    name: 'delete-field',
    weight: 12,
    apply: (b) => {
      const path = randomPath(b);
      return path !== null && setAt(b, path, undefined) ? `deleted ${show(path)}` : null;
    },
  },
  {
    name: 'swap-type',
    weight: 14,
    apply: (b) => {
      const path = randomPath(b);
      if (path === null) return null;
      const at = parentOf(b.review, path);
      const current = at === null ? undefined : Array.isArray(at.holder) ? at.holder[Number(at.key)] : at.holder[String(at.key)];
      const value = otherTypeValue(b, current);
      return setAt(b, path, value) ? `set ${show(path)} to ${JSON.stringify(value)}` : null;
    },
  },
  {
    name: 'deep-nesting',
    weight: 5,
    apply: (b) => {
      const path = randomPath(b);
      if (path === null) return null;
      const depth = b.pick([1000, 10_000, 100_000]);
      const [open, close] = b.rnd() < 0.5 ? ['[', ']'] : ['{"a":', '}'];
      const raw = `${open.repeat(depth)}1${close.repeat(depth)}`;
      return setAt(b, path, b.splice(raw)) ? `nested ${show(path)} ${depth} deep` : null;
    },
  },
  {
    name: 'special-keys',
    weight: 8,
    apply: (b) => {
      const key = b.pick(SPECIAL_KEYS);
      const objects = pathsOf(b.review).filter((p) => {
        const at = parentOf(b.review, p);
        const v = at === null ? undefined : Array.isArray(at.holder) ? at.holder[Number(at.key)] : at.holder[String(at.key)];
        return isObject(v);
      });
      const target = b.rnd() < 0.3 ? null : objects.length > 0 ? b.pick(objects) : null;
      const value = b.pick(['{"polluted":true}', '"x"', '1', 'null', '[]', '{"toString":1,"valueOf":"x"}']);
      const marker = b.splice(`{${JSON.stringify(key)}:${value},"k":1}`);
      // Also as a container name, an annotation key, an env name, a label value.
      const pod = b.pod;
      const where = b.int(4);
      if (target === null && pod !== null) {
        if (where === 0 && isObject(pod.spec) && Array.isArray(pod.spec.containers) && isObject(pod.spec.containers[0])) {
          pod.spec.containers[0].name = key;
          return `container named ${key}`;
        }
        const annotations = b.annotations();
        if (where === 1 && annotations !== null) {
          annotations[b.pick(USER_ANNOTATIONS)] = key;
          return `annotation valued ${key}`;
        }
        if (where === 2 && annotations !== null) {
          const m = b.splice(`{${JSON.stringify(key)}:${value},"mps-injector.io/gpu-memory":"1Gi"}`);
          (b.pod!.metadata as JsonObject).annotations = m;
          return `annotations with own ${key} key`;
        }
        if (isObject(pod.metadata)) {
          (pod.metadata as JsonObject).labels = b.splice(`{${JSON.stringify(key)}:${value}}`);
          return `labels with own ${key} key`;
        }
        return null;
      }
      if (target === null) return null;
      return setAt(b, [...target, `fuzz-${key}`], marker) ? `object with own ${key} key under ${show(target)}` : null;
    },
  },
  {
    name: 'huge-string',
    weight: 8,
    apply: (b) => {
      const annotations = b.annotations();
      if (annotations !== null && b.rnd() < 0.6) {
        const key = b.pick([...USER_ANNOTATIONS, 'example.com/notes']);
        annotations[key] = hugeString(b);
        return `huge ${key}`;
      }
      const strings = pathsOf(b.review).filter((p) => {
        const at = parentOf(b.review, p);
        return at !== null && typeof (Array.isArray(at.holder) ? at.holder[Number(at.key)] : at.holder[String(at.key)]) === 'string';
      });
      if (strings.length === 0) return null;
      const path = b.pick(strings);
      return setAt(b, path, hugeString(b)) ? `huge string at ${show(path)}` : null;
    },
  },
  {
    name: 'invalid-utf8',
    weight: 6,
    apply: (b) => {
      const bytes = b.pick([[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]]);
      const escaped = b.pick(['', '\\ud800', '\\udfff\\ud800']);
      const raw = Buffer.concat([Buffer.from('"gpu', 'utf8'), Buffer.from(bytes), Buffer.from(`${escaped}"`, 'utf8')]);
      const marker = b.splice(raw);
      const annotations = b.annotations();
      const where = b.int(3);
      const pod = b.pod;
      if (where === 0 && annotations !== null) {
        annotations[b.pick(USER_ANNOTATIONS)] = marker;
        return `invalid UTF-8 ${JSON.stringify(bytes)} in an annotation`;
      }
      if (where === 1 && pod !== null && isObject(pod.spec) && Array.isArray(pod.spec.containers) && isObject(pod.spec.containers[0])) {
        pod.spec.containers[0].name = marker;
        return `invalid UTF-8 ${JSON.stringify(bytes)} in a container name`;
      }
      const request = b.request;
      if (request === null) return null;
      request.uid = marker;
      return `invalid UTF-8 ${JSON.stringify(bytes)} in request.uid`;
    },
  },
  {
    name: 'many-containers',
    weight: 5,
    apply: (b) => {
      const pod = b.pod;
      if (pod === null || !isObject(pod.spec) || !Array.isArray(pod.spec.containers) || !isObject(pod.spec.containers[0])) return null;
      const first = pod.spec.containers[0];
      // Copies of a container that an earlier mutation made huge would make a body of gigabytes.
      if (JSON.stringify(first).length > 16 * 1024) return null;
      const count = b.pick([49, 200, 1000]);
      pod.spec.containers = Array.from({ length: count }, (_, i) => ({ ...structuredClone(first), name: `c-${i}` }));
      const annotations = b.annotations();
      const selected = b.pick(['none', 'one', 'all']);
      if (annotations !== null && selected === 'one') annotations['mps-injector.io/containers'] = 'c-7';
      if (annotations !== null && selected === 'all') annotations['mps-injector.io/containers'] = pod.spec.containers.map((c) => (c as JsonObject).name).join(',');
      if (annotations !== null) annotations['mps-injector.io/gpu-memory'] = '1Gi';
      return `${count} containers, annotation selects ${selected}`;
    },
  },
  {
    name: 'odd-quantity',
    weight: 10,
    apply: (b) => {
      const annotations = b.annotations();
      if (annotations === null) return null;
      const which = b.int(4);
      if (which === 0) {
        annotations['mps-injector.io/gpu-percent'] = b.pick(ODD_PERCENTS);
        return `gpu-percent ${JSON.stringify(annotations['mps-injector.io/gpu-percent'])}`;
      }
      if (which === 1) {
        annotations['mps-injector.io/priority'] = b.pick(ODD_PRIORITIES);
        return `priority ${JSON.stringify(annotations['mps-injector.io/priority'])}`;
      }
      if (which === 2) {
        const pod = b.pod;
        const container = isObject(pod?.spec) && Array.isArray(pod.spec.containers) ? pod.spec.containers[0] : undefined;
        if (!isObject(container)) return null;
        const quantity = b.pick(ODD_QUANTITIES);
        container.resources = { limits: { 'nvidia.com/gpu': quantity, memory: quantity }, requests: { cpu: quantity } };
        return `container resources ${JSON.stringify(quantity)}`;
      }
      annotations['mps-injector.io/gpu-memory'] = b.pick(ODD_QUANTITIES);
      return `gpu-memory ${JSON.stringify(annotations['mps-injector.io/gpu-memory']).slice(0, 40)}`;
    },
  },
  {
    name: 'annotations-near-limit',
    weight: 6,
    apply: (b) => {
      const annotations = b.annotations();
      if (annotations === null) return null;
      const used = Object.entries(annotations).reduce((n, [k, v]) => n + Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : 0), 0);
      const key = 'example.com/payload';
      // Leave 0..3000 bytes of room: the webhook's own annotations take about 1 KB.
      const room = b.int(3000);
      const size = Math.max(0, TOTAL_ANNOTATION_BYTES - used - Buffer.byteLength(key) - room);
      annotations[key] = 'x'.repeat(size);
      annotations['mps-injector.io/gpu-memory'] = '1Gi';
      return `annotations ${room} bytes under the API server's total`;
    },
  },
  {
    name: 'odd-gpu-model',
    weight: 4,
    apply: (b) => {
      const annotations = b.annotations();
      if (annotations === null) return null;
      const model = b.pick(['H100', '(', '[a-', '.*', 'H100|A100', '\\', 'x'.repeat(100 * 1024), '(?:'.repeat(20_000), 'NVIDIA H100 80GB HBM3', '\u0000', 'h'.repeat(300)]);
      annotations['mps-injector.io/gpu-model'] = model;
      return `gpu-model of ${model.length} characters starting ${JSON.stringify(model.slice(0, 12))}`;
    },
  },
  {
    name: 'review-envelope',
    weight: 6,
    apply: (b) => {
      const request = b.request;
      const which = b.int(6);
      if (which === 0) b.review.apiVersion = b.pick(['admission.k8s.io/v2', '', 'x'.repeat(200_000)]);
      else if (which === 1) b.review.kind = b.pick(['Admissionreview', 'x'.repeat(200_000)]);
      else if (which === 2 && request !== null) request.operation = b.pick(['UPDATE', 'DELETE', 'CONNECT', 'create', '']);
      else if (which === 3 && request !== null) request.dryRun = b.pick([true, 'true', 1]);
      else if (which === 4 && request !== null) request.kind = b.pick<Json>([{ group: '', version: 'v1', kind: 'Pod' }, { group: 'apps', version: 'v1', kind: 'Pod' }, { kind: 'Deployment' }]);
      else if (request !== null) request.uid = b.pick(['', 'x'.repeat(100_000), 'ü-uid']);
      else return null;
      return `envelope change ${which}`;
    },
  },
];

const TOTAL_WEIGHT = MUTATIONS.reduce((n, m) => n + m.weight, 0);

function pickMutation(b: CaseBuilder): (typeof MUTATIONS)[number] {
  let x = b.rnd() * TOTAL_WEIGHT;
  for (const m of MUTATIONS) {
    x -= m.weight;
    if (x < 0) return m;
  }
  return MUTATIONS[MUTATIONS.length - 1]!;
}

/** Pad the body with an annotation to exactly `target` bytes, when the review still has a pod. */
function padTo(b: CaseBuilder, target: number): Buffer | null {
  const annotations = b.annotations();
  if (annotations === null) return null;
  annotations['example.com/padding'] = '';
  const base = b.body().length;
  if (base > target) return null;
  annotations['example.com/padding'] = 'p'.repeat(target - base);
  const body = b.body();
  return body.length === target ? body : null;
}

/** The `index`-th case of a seed: the same on every run and platform. */
export function fuzzCase(index: number, opts: FuzzOptions): FuzzCase {
  const rnd = mulberry32((opts.seed * 1_000_003 + index) >>> 0);
  const sample = SAMPLES[Math.floor(rnd() * SAMPLES.length)]!;
  const review = loadCapturedReview(sample) as JsonObject;
  const b = new CaseBuilder(review, rnd);
  if (b.request !== null) b.request.uid = `fuzz-${opts.seed}-${index}`;
  // One case in fifty is a body just under or just over the cap.
  if (rnd() < 0.02) {
    const over = rnd() < 0.5;
    const body = padTo(b, over ? opts.maxBodyBytes + 1 + b.int(64) : opts.maxBodyBytes - b.int(64));
    if (body !== null) return { index, mutations: [`body ${over ? 'just over' : 'just under'} the ${opts.maxBodyBytes}-byte cap`], body };
  }
  const count = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < count; i++) {
    const mutation = pickMutation(b);
    const done = mutation.apply(b);
    if (done !== null) b.mutations.push(`${mutation.name}: ${done}`);
  }
  return { index, mutations: b.mutations, body: b.body() };
}
