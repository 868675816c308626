/**
 * An in-process stand-in for the Kubernetes API server, for the cluster adapter's tests and
 * benchmarks. It speaks real HTTP (or HTTPS) to the real @kubernetes/client-node and keeps
 * the semantics the adapter depends on:
 *
 * - one cluster-wide resourceVersion counter; every write bumps it;
 * - list returns the collection's resourceVersion; watch streams newline-delimited JSON
 *   events (chunked) from a given resourceVersion, with ADDED/DELETED for objects that enter
 *   or leave a label/field selector;
 * - a watch from a resourceVersion older than the retained history gets a 410 Expired
 *   (an ERROR event in a 200 stream, as the real server does, or an HTTP 410 on request);
 * - update with a stale metadata.resourceVersion: 409 Conflict; create of an existing name:
 *   409 AlreadyExists; JSON, merge and strategic-merge patches;
 * - faults on demand: dropped watch streams, 5xx answers, and going fully down and back up.
 *
 * Resources: pods, nodes, namespaces, services, configmaps, secrets, leases,
 * mutatingwebhookconfigurations; SubjectAccessReviews and SelfSubjectAccessReviews are answered
 * by an authorizer the test sets (everything is allowed by default).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { KubeConfig } from '@kubernetes/client-node';

export interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

interface ResourceType {
  prefix: string;
  namespaced: boolean;
  kind: string;
  apiVersion: string;
}

export const StandInResources = {
  pods: { prefix: '/api/v1', namespaced: true, kind: 'Pod', apiVersion: 'v1' },
  nodes: { prefix: '/api/v1', namespaced: false, kind: 'Node', apiVersion: 'v1' },
  namespaces: { prefix: '/api/v1', namespaced: false, kind: 'Namespace', apiVersion: 'v1' },
  services: { prefix: '/api/v1', namespaced: true, kind: 'Service', apiVersion: 'v1' },
  configmaps: { prefix: '/api/v1', namespaced: true, kind: 'ConfigMap', apiVersion: 'v1' },
  secrets: { prefix: '/api/v1', namespaced: true, kind: 'Secret', apiVersion: 'v1' },
  leases: { prefix: '/apis/coordination.k8s.io/v1', namespaced: true, kind: 'Lease', apiVersion: 'coordination.k8s.io/v1' },
  mutatingwebhookconfigurations: {
    prefix: '/apis/admissionregistration.k8s.io/v1',
    namespaced: false,
    kind: 'MutatingWebhookConfiguration',
    apiVersion: 'admissionregistration.k8s.io/v1',
  },
} as const satisfies Record<string, ResourceType>;
export type StandInResource = keyof typeof StandInResources;

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  type: EventType;
  /** State before the change (null for ADDED). */
  before: StoredObject | null;
  /** State after the change (the last state for DELETED). */
  after: StoredObject;
  rv: number;
}

interface Watcher {
  resource: StandInResource;
  namespace: string | null;
  matches: (obj: StoredObject) => boolean;
  res: http.ServerResponse;
  timer: NodeJS.Timeout | undefined;
}

/** One request as the stand-in saw it. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  watch: boolean;
  status: number;
}

export interface FaultSpec {
  /** HTTP status to answer with (500, 503, 429, ...). */
  status: number;
  /** How many matching requests fail; then the fault is spent. */
  count: number;
  /** Which requests it applies to (all when omitted). */
  match?: (req: { method: string; path: string; watch: boolean }) => boolean;
}

/** What an access review asks: may `user` (null: the caller) do `verb` on a resource? */
export interface AccessQuestion {
  user: string | null;
  verb: string;
  group: string;
  resource: string;
  namespace: string;
  name: string;
}

export interface StandInOptions {
  /** Serve HTTPS with this pair; plain HTTP when omitted. */
  tls?: { certPem: string; keyPem: string; caPem: string };
  /** Watch events kept per resource type; a watch from before them gets 410 Gone. */
  historyLimit?: number;
  /** Answer a too-old watch with HTTP 410 instead of an ERROR event in a 200 stream. */
  goneAsHttpStatus?: boolean;
  /** Delay before answering each non-watch request (simulated API server latency). */
  responseDelayMs?: number;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function statusBody(code: number, reason: string, message: string, details?: { name?: string; kind?: string }): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details: details ?? {}, code };
}

/** Parse a Kubernetes label selector (equality and set based) into a predicate. */
export function parseLabelSelector(text: string): (labels: Record<string, string>) => boolean {
  const trimmed = text.trim();
  if (trimmed === '') return () => true;
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of trimmed) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  if (current.trim() !== '') terms.push(current.trim());
  const predicates = terms.map((term): ((labels: Record<string, string>) => boolean) => {
    let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) {
      const key = m[1] as string;
      const values = (m[3] as string).split(',').map((v) => v.trim());
      return m[2] === 'in' ? (l) => l[key] !== undefined && values.includes(l[key]) : (l) => l[key] === undefined || !values.includes(l[key]);
    }
    m = /^([^\s!=]+)\s*!=\s*(\S*)$/.exec(term);
    if (m) {
      const [, key, value] = m as unknown as [string, string, string];
      return (l) => l[key] !== value;
    }
    m = /^([^\s!=]+)\s*==?\s*(\S*)$/.exec(term);
    if (m) {
      const [, key, value] = m as unknown as [string, string, string];
      return (l) => l[key] === value;
    }
    m = /^!([^\s!=]+)$/.exec(term);
    if (m) {
      const key = m[1] as string;
      return (l) => l[key] === undefined;
    }
    if (/^[^\s!=(),]+$/.test(term)) return (l) => l[term] !== undefined;
    throw new Error(`unsupported label selector term "${term}"`);
  });
  return (labels) => predicates.every((p) => p(labels));
}

function fieldValue(obj: StoredObject, path: string): string | undefined {
  let cursor: unknown = obj;
  for (const part of path.split('.')) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as Record<string, unknown>)[part];
  }
  if (cursor === undefined || cursor === null) return undefined;
  return String(cursor);
}

/** Field selectors of the form a.b=c,d.e!=f. */
function parseFieldSelector(text: string): (obj: StoredObject) => boolean {
  const terms = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const predicates = terms.map((term): ((obj: StoredObject) => boolean) => {
    const neq = /^([^!=]+)!=(.*)$/.exec(term);
    if (neq) return (o) => (fieldValue(o, neq[1] as string) ?? '') !== neq[2];
    const eq = /^([^!=]+)==?(.*)$/.exec(term);
    if (eq) return (o) => (fieldValue(o, eq[1] as string) ?? '') === eq[2];
    throw new Error(`unsupported field selector term "${term}"`);
  });
  return (obj) => predicates.every((p) => p(obj));
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const result: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

interface ParsedPath {
  resource: StandInResource;
  namespace: string | null;
  name: string | null;
}

function parsePath(pathname: string): ParsedPath | null {
  for (const [resource, type] of Object.entries(StandInResources) as [StandInResource, ResourceType][]) {
    if (!pathname.startsWith(`${type.prefix}/`)) continue;
    const parts = pathname.slice(type.prefix.length + 1).split('/').map(decodeURIComponent);
    if (parts[0] === 'namespaces' && parts.length >= 3 && parts[2] === resource && type.namespaced) {
      if (parts.length === 3) return { resource, namespace: parts[1] as string, name: null };
      if (parts.length === 4) return { resource, namespace: parts[1] as string, name: parts[3] as string };
    }
    if (parts[0] === resource) {
      if (parts.length === 1) return { resource, namespace: null, name: null };
      if (parts.length === 2 && !type.namespaced) return { resource, namespace: null, name: parts[1] as string };
    }
  }
  return null;
}

const objectKey = (namespace: string | null | undefined, name: string): string => `${namespace ?? ''}/${name}`;

export class StandInApiServer {
  private server: http.Server | https.Server;
  private readonly sockets = new Set<Socket>();
  private readonly objects = new Map<StandInResource, Map<string, StoredObject>>();
  private readonly history = new Map<StandInResource, HistoryEvent[]>();
  /** Lowest resourceVersion a watch may resume from, per resource type. */
  private readonly oldestResumable = new Map<StandInResource, number>();
  private readonly watchers = new Set<Watcher>();
  private readonly watchOpened = new Set<() => void>();
  private holds: { match: (req: { method: string; path: string; watch: boolean }) => boolean; arrived: () => void; released: Promise<void> }[] = [];
  private faults: FaultSpec[] = [];
  private rv = 1000;
  private listeningPort = 0;
  private down = false;
  private readonly historyLimit: number;
  private readonly options: StandInOptions;
  /** Every request answered, oldest first. */
  readonly requests: RecordedRequest[] = [];
  /** Answers SubjectAccessReviews and SelfSubjectAccessReviews; allows everything unless a test sets it. */
  authorize: (question: AccessQuestion) => boolean = () => true;

  private constructor(options: StandInOptions) {
    this.options = options;
    this.historyLimit = options.historyLimit ?? 10_000;
    for (const resource of Object.keys(StandInResources) as StandInResource[]) {
      this.objects.set(resource, new Map());
      this.history.set(resource, []);
      this.oldestResumable.set(resource, this.rv);
    }
    this.server = this.createServer();
  }

  /** Start listening on 127.0.0.1 (a free port unless one is given). */
  static async start(options: StandInOptions = {}, port = 0): Promise<StandInApiServer> {
    const standIn = new StandInApiServer(options);
    await standIn.listen(port);
    return standIn;
  }

  get port(): number {
    return this.listeningPort;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.listeningPort}`;
  }

  /** A KubeConfig that points the real client at this stand-in. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const cluster = this.options.tls
      ? { name: 'stand-in', server: this.url, caData: Buffer.from(this.options.tls.caPem).toString('base64'), skipTLSVerify: false }
      : { name: 'stand-in', server: this.url, skipTLSVerify: true };
    kc.loadFromClusterAndUser(cluster, { name: 'stand-in-user', token: 'stand-in-token' });
    return kc;
  }

  // ---- direct access for test set-up (each write is an API write: it bumps the version and notifies watches) ----

  create(resource: StandInResource, obj: StoredObject): StoredObject {
    const result = this.doCreate(resource, obj.metadata.namespace ?? null, clone(obj));
    if ('error' in result) throw new Error(`stand-in create failed: ${result.error.message as string}`);
    return clone(result.object);
  }

  /** Replace unconditionally (or create when absent). */
  put(resource: StandInResource, obj: StoredObject): StoredObject {
    const existing = this.get(resource, obj.metadata.namespace ?? null, obj.metadata.name ?? '');
    if (existing === null) return this.create(resource, obj);
    const next = clone(obj);
    next.metadata.resourceVersion = undefined;
    return clone(this.commitUpdate(resource, existing, next));
  }

  /** Change an object in place with a function (creates nothing). */
  modify(resource: StandInResource, namespace: string | null, name: string, change: (obj: StoredObject) => void): StoredObject {
    const existing = this.get(resource, namespace, name);
    if (existing === null) throw new Error(`stand-in: no ${resource} ${objectKey(namespace, name)} to modify`);
    const next = clone(existing);
    change(next);
    return clone(this.commitUpdate(resource, existing, next));
  }

  remove(resource: StandInResource, namespace: string | null, name: string): boolean {
    const existing = this.get(resource, namespace, name);
    if (existing === null) return false;
    this.commitDelete(resource, existing);
    return true;
  }

  get(resource: StandInResource, namespace: string | null, name: string): StoredObject | null {
    const found = this.objects.get(resource)?.get(objectKey(StandInResources[resource].namespaced ? namespace : null, name));
    return found === undefined ? null : clone(found);
  }

  list(resource: StandInResource, namespace: string | null = null): StoredObject[] {
    const all = [...(this.objects.get(resource)?.values() ?? [])];
    return all.filter((o) => namespace === null || o.metadata.namespace === namespace).map(clone);
  }

  /** The current cluster-wide resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---- faults ----

  /** Make the next matching requests fail with a status (500, 503, ...). */
  injectFault(fault: FaultSpec): void {
    this.faults.push({ ...fault });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /**
   * Hold the answer to the next matching request: it is carried out when it arrives (`arrived`
   * resolves then), and its answer is sent once `release()` is called. For tests that need a
   * request in flight whose result was already decided.
   */
  holdNext(match: (req: { method: string; path: string; watch: boolean }) => boolean): { arrived: Promise<void>; release: () => void } {
    let release!: () => void;
    let arrived!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    this.holds.push({ match, arrived, released });
    return { arrived: arrival, release };
  }

  /** Forget the watch history: a watch resuming from an older resourceVersion now gets 410 Gone. */
  compactHistory(): void {
    for (const resource of this.history.keys()) {
      this.history.set(resource, []);
      this.oldestResumable.set(resource, this.rv);
    }
  }

  /** Number of watch streams open now. */
  get openWatches(): number {
    return this.watchers.size;
  }

  /** Resolves once at least `count` watch streams are open on a resource type (checked as each one opens). */
  waitForWatches(resource: StandInResource, count = 1, timeoutMs = 10_000): Promise<void> {
    const enough = (): boolean => [...this.watchers].filter((w) => w.resource === resource).length >= count;
    if (enough()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchOpened.delete(check);
        reject(new Error(`stand-in: fewer than ${count} ${resource} watches opened within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        if (!enough()) return;
        clearTimeout(timer);
        this.watchOpened.delete(check);
        resolve();
      };
      this.watchOpened.add(check);
    });
  }

  /** End every open watch stream: gracefully (the server closes, as on its watch timeout) or abruptly (socket reset). */
  dropWatches(opts: { abrupt?: boolean; resource?: StandInResource } = {}): number {
    let dropped = 0;
    for (const watcher of [...this.watchers]) {
      if (opts.resource !== undefined && watcher.resource !== opts.resource) continue;
      this.closeWatcher(watcher, opts.abrupt === true);
      dropped++;
    }
    return dropped;
  }

  /** Stop answering: the listener closes and every connection is reset. State is kept. */
  async goDown(): Promise<void> {
    if (this.down) return;
    this.down = true;
    for (const watcher of [...this.watchers]) this.closeWatcher(watcher, true);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Listen again on the same port after goDown(). */
  async comeBack(): Promise<void> {
    if (!this.down) return;
    this.server = this.createServer();
    await this.listen(this.listeningPort);
    this.down = false;
  }

  async stop(): Promise<void> {
    await this.goDown();
  }

  /** Count recorded requests that match. */
  countRequests(match: (r: RecordedRequest) => boolean = () => true): number {
    return this.requests.filter(match).length;
  }

  // ---- HTTP ----

  private createServer(): http.Server | https.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      void this.handle(req, res);
    };
    const server = this.options.tls ? https.createServer({ cert: this.options.tls.certPem, key: this.options.tls.keyPem }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 30_000;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listeningPort = (this.server.address() as AddressInfo).port;
  }

  private async readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private send(res: http.ServerResponse, record: RecordedRequest & { held?: Promise<void> }, status: number, body: unknown): void {
    record.status = status;
    const text = JSON.stringify(body);
    const answer = (): void => {
      this.requests.push({ method: record.method, path: record.path, query: record.query, watch: record.watch, status });
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (record.held) void record.held.then(answer);
    else answer();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const method = (req.method ?? 'GET').toUpperCase();
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const record: RecordedRequest & { held?: Promise<void> } = { method, path: url.pathname, query: url.search, watch, status: 0 };
    const body = method === 'GET' || method === 'HEAD' ? '' : await this.readBody(req);

    const faultIndex = this.faults.findIndex((f) => f.count > 0 && (f.match === undefined || f.match({ method, path: url.pathname, watch })));
    if (faultIndex >= 0) {
      const fault = this.faults[faultIndex] as FaultSpec;
      fault.count--;
      if (fault.count <= 0) this.faults.splice(faultIndex, 1);
      this.send(res, record, fault.status, statusBody(fault.status, 'InternalError', `stand-in fault: answering ${fault.status} on purpose`));
      return;
    }

    const holdIndex = this.holds.findIndex((h) => h.match({ method, path: url.pathname, watch }));
    if (holdIndex >= 0) {
      const [hold] = this.holds.splice(holdIndex, 1);
      if (hold) {
        record.held = hold.released;
        hold.arrived();
      }
    }

    const review = /^\/apis\/authorization\.k8s\.io\/v1\/(subjectaccessreviews|selfsubjectaccessreviews)$/.exec(url.pathname);
    if (review !== null && method === 'POST') {
      this.send(res, record, 201, this.answerAccessReview(review[1] === 'selfsubjectaccessreviews', JSON.parse(body) as StoredObject));
      return;
    }

    const parsed = parsePath(url.pathname);
    if (parsed === null) {
      this.send(res, record, 404, statusBody(404, 'NotFound', `the server could not find the requested resource (${method} ${url.pathname})`));
      return;
    }

    if (!watch && this.options.responseDelayMs) await new Promise((resolve) => setTimeout(resolve, this.options.responseDelayMs));

    const { resource, namespace, name } = parsed;
    const kind = StandInResources[resource].kind;
    try {
      if (method === 'GET' && name === null) {
        if (watch) this.startWatch(req, res, record, resource, namespace, url.searchParams);
        else this.send(res, record, 200, this.listBody(resource, namespace, url.searchParams));
        return;
      }
      if (method === 'GET' && name !== null) {
        const found = this.get(resource, namespace, name);
        if (found === null) this.send(res, record, 404, statusBody(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));
        else this.send(res, record, 200, found);
        return;
      }
      if (method === 'POST' && name === null) {
        const result = this.doCreate(resource, namespace, JSON.parse(body) as StoredObject);
        if ('error' in result) this.send(res, record, result.status, result.error);
        else this.send(res, record, 201, clone(result.object));
        return;
      }
      if (method === 'PUT' && name !== null) {
        const incoming = JSON.parse(body) as StoredObject;
        const existing = this.get(resource, namespace, name);
        if (existing === null) {
          this.send(res, record, 404, statusBody(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));
          return;
        }
        const wanted = incoming.metadata?.resourceVersion;
        if (wanted !== undefined && wanted !== '' && wanted !== existing.metadata.resourceVersion) {
          this.send(res, record, 409, this.conflictBody(resource, name));
          return;
        }
        incoming.metadata = { ...incoming.metadata, name, namespace: existing.metadata.namespace };
        this.send(res, record, 200, clone(this.commitUpdate(resource, existing, incoming)));
        return;
      }
      if (method === 'PATCH' && name !== null) {
        const existing = this.get(resource, namespace, name);
        if (existing === null) {
          this.send(res, record, 404, statusBody(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));
          return;
        }
        const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
        let next: StoredObject;
        if (contentType === 'application/json-patch+json') {
          try {
            next = jsonPatch.applyPatch(clone(existing), JSON.parse(body) as Operation[], true, true).newDocument;
          } catch (err) {
            this.send(res, record, 422, statusBody(422, 'Invalid', `the JSON patch cannot be applied: ${(err as Error).message}`, { name, kind }));
            return;
          }
        } else if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') {
          next = mergePatch(existing, JSON.parse(body)) as StoredObject;
        } else {
          this.send(res, record, 415, statusBody(415, 'UnsupportedMediaType', `the body of the request was in an unknown format: ${contentType}`));
          return;
        }
        const wanted = next.metadata?.resourceVersion;
        if (wanted !== undefined && wanted !== existing.metadata.resourceVersion) {
          this.send(res, record, 409, this.conflictBody(resource, name));
          return;
        }
        this.send(res, record, 200, clone(this.commitUpdate(resource, existing, next)));
        return;
      }
      if (method === 'DELETE' && name !== null) {
        const existing = this.get(resource, namespace, name);
        if (existing === null) {
          this.send(res, record, 404, statusBody(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));
          return;
        }
        this.commitDelete(resource, existing);
        this.send(res, record, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: resource } });
        return;
      }
      this.send(res, record, 405, statusBody(405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`));
    } catch (err) {
      this.send(res, record, 400, statusBody(400, 'BadRequest', `stand-in could not handle the request: ${(err as Error).message}`));
    }
  }

  private answerAccessReview(self: boolean, review: StoredObject): Record<string, unknown> {
    const spec = (review.spec ?? {}) as { user?: string; resourceAttributes?: { verb?: string; group?: string; resource?: string; namespace?: string; name?: string } };
    const attributes = spec.resourceAttributes ?? {};
    const allowed = this.authorize({
      user: self ? null : (spec.user ?? ''),
      verb: attributes.verb ?? '',
      group: attributes.group ?? '',
      resource: attributes.resource ?? '',
      namespace: attributes.namespace ?? '',
      name: attributes.name ?? '',
    });
    return {
      apiVersion: 'authorization.k8s.io/v1',
      kind: self ? 'SelfSubjectAccessReview' : 'SubjectAccessReview',
      metadata: {},
      spec,
      status: { allowed, ...(allowed ? {} : { reason: 'stand-in: no rule allows it' }) },
    };
  }

  private conflictBody(resource: StandInResource, name: string): Record<string, unknown> {
    return statusBody(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, kind: resource },
    );
  }

  private selectorFor(resource: StandInResource, namespace: string | null, params: URLSearchParams): (obj: StoredObject) => boolean {
    const labels = parseLabelSelector(params.get('labelSelector') ?? '');
    const fields = parseFieldSelector(params.get('fieldSelector') ?? '');
    const namespaced = StandInResources[resource].namespaced;
    return (obj) => (!namespaced || namespace === null || obj.metadata.namespace === namespace) && labels(obj.metadata.labels ?? {}) && fields(obj);
  }

  private listBody(resource: StandInResource, namespace: string | null, params: URLSearchParams): Record<string, unknown> {
    const matches = this.selectorFor(resource, namespace, params);
    const type = StandInResources[resource];
    const items = [...(this.objects.get(resource)?.values() ?? [])].filter(matches).map(clone);
    return { kind: `${type.kind}List`, apiVersion: type.apiVersion, metadata: { resourceVersion: String(this.rv) }, items };
  }

  private startWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: RecordedRequest,
    resource: StandInResource,
    namespace: string | null,
    params: URLSearchParams,
  ): void {
    const matches = this.selectorFor(resource, namespace, params);
    const fromText = params.get('resourceVersion') ?? '';
    const from = fromText === '' || fromText === '0' ? null : Number(fromText);

    if (from !== null && (!Number.isFinite(from) || from < (this.oldestResumable.get(resource) ?? 0))) {
      const message = `too old resource version: ${fromText} (${this.oldestResumable.get(resource) ?? 0})`;
      if (this.options.goneAsHttpStatus) {
        this.send(res, record, 410, statusBody(410, 'Expired', message));
        return;
      }
      record.status = 200;
      this.requests.push(record);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', message) })}\n`);
      return;
    }

    record.status = 200;
    this.requests.push(record);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const watcher: Watcher = { resource, namespace, matches, res, timer: undefined };
    this.watchers.add(watcher);
    const cleanup = (): void => {
      if (watcher.timer) clearTimeout(watcher.timer);
      this.watchers.delete(watcher);
    };
    res.on('close', cleanup);
    req.on('close', cleanup);
    const timeoutSeconds = Number(params.get('timeoutSeconds') ?? '0');
    if (timeoutSeconds > 0) watcher.timer = setTimeout(() => this.closeWatcher(watcher, false), timeoutSeconds * 1000);

    if (from === null) {
      for (const obj of this.objects.get(resource)?.values() ?? []) {
        if (matches(obj)) this.writeEvent(watcher, 'ADDED', obj);
      }
    } else {
      for (const event of this.history.get(resource) ?? []) {
        if (event.rv > from) this.deliver(watcher, event);
      }
    }
    for (const notify of [...this.watchOpened]) notify();
  }

  private closeWatcher(watcher: Watcher, abrupt: boolean): void {
    if (watcher.timer) clearTimeout(watcher.timer);
    this.watchers.delete(watcher);
    if (abrupt) watcher.res.socket?.destroy();
    else watcher.res.end();
  }

  private writeEvent(watcher: Watcher, type: EventType, obj: StoredObject): void {
    if (watcher.res.writableEnded || watcher.res.destroyed) return;
    watcher.res.write(`${JSON.stringify({ type, object: obj })}\n`);
  }

  /** Translate a change into what this watcher sees, given its selector. */
  private deliver(watcher: Watcher, event: HistoryEvent): void {
    const before = event.before !== null && watcher.matches(event.before);
    const after = watcher.matches(event.after);
    if (event.type === 'DELETED') {
      if (after) this.writeEvent(watcher, 'DELETED', event.after);
      return;
    }
    if (!before && after) this.writeEvent(watcher, 'ADDED', event.after);
    else if (before && after) this.writeEvent(watcher, 'MODIFIED', event.after);
    else if (before && !after) this.writeEvent(watcher, 'DELETED', event.after);
  }

  private record(resource: StandInResource, event: HistoryEvent): void {
    const events = this.history.get(resource) as HistoryEvent[];
    events.push(event);
    if (events.length > this.historyLimit) {
      const dropped = events.splice(0, events.length - this.historyLimit);
      const last = dropped[dropped.length - 1];
      if (last) this.oldestResumable.set(resource, last.rv);
    }
    for (const watcher of this.watchers) {
      if (watcher.resource === resource) this.deliver(watcher, event);
    }
  }

  private doCreate(
    resource: StandInResource,
    pathNamespace: string | null,
    obj: StoredObject,
  ): { object: StoredObject } | { status: number; error: Record<string, unknown> } {
    const type = StandInResources[resource];
    obj.metadata = { ...(obj.metadata ?? {}) };
    let name = obj.metadata.name;
    if ((name === undefined || name === '') && obj.metadata.generateName) name = `${obj.metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (name === undefined || name === '') {
      return { status: 422, error: statusBody(422, 'Invalid', `${type.kind} is invalid: metadata.name: Required value: name or generateName is required`) };
    }
    const namespace = type.namespaced ? (pathNamespace ?? obj.metadata.namespace ?? 'default') : undefined;
    const store = this.objects.get(resource) as Map<string, StoredObject>;
    if (store.has(objectKey(namespace, name))) {
      return { status: 409, error: statusBody(409, 'AlreadyExists', `${resource} "${name}" already exists`, { name, kind: resource }) };
    }
    this.rv++;
    const created: StoredObject = {
      ...obj,
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: {
        ...obj.metadata,
        name,
        ...(namespace !== undefined ? { namespace } : {}),
        uid: randomUUID(),
        resourceVersion: String(this.rv),
        creationTimestamp: new Date().toISOString(),
      },
    };
    store.set(objectKey(namespace, name), created);
    this.record(resource, { type: 'ADDED', before: null, after: clone(created), rv: this.rv });
    return { object: created };
  }

  private commitUpdate(resource: StandInResource, existing: StoredObject, next: StoredObject): StoredObject {
    const type = StandInResources[resource];
    this.rv++;
    const updated: StoredObject = {
      ...next,
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: {
        ...next.metadata,
        name: existing.metadata.name,
        ...(existing.metadata.namespace !== undefined ? { namespace: existing.metadata.namespace } : {}),
        uid: existing.metadata.uid,
        creationTimestamp: existing.metadata.creationTimestamp,
        resourceVersion: String(this.rv),
      },
    };
    (this.objects.get(resource) as Map<string, StoredObject>).set(objectKey(existing.metadata.namespace, existing.metadata.name ?? ''), updated);
    this.record(resource, { type: 'MODIFIED', before: clone(existing), after: clone(updated), rv: this.rv });
    return updated;
  }

  private commitDelete(resource: StandInResource, existing: StoredObject): void {
    this.rv++;
    (this.objects.get(resource) as Map<string, StoredObject>).delete(objectKey(existing.metadata.namespace, existing.metadata.name ?? ''));
    const last = { ...clone(existing), metadata: { ...existing.metadata, resourceVersion: String(this.rv) } };
    this.record(resource, { type: 'DELETED', before: clone(existing), after: last, rv: this.rv });
  }
}
