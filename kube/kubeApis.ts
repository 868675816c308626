/**
 * The typed Kubernetes API clients the adapter uses, built from one KubeConfig, and what
 * their failures mean.
 *
 * Every call goes through `callOptions(signal)`: the admission deadline aborts the request,
 * and requests share one keep-alive agent (the client creates a fresh agent per request,
 * which would cost a TCP and TLS handshake on every reservation commit).
 */
import http from 'node:http';
import https from 'node:https';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  Observable,
  createConfiguration,
  ServerConfiguration,
} from '@kubernetes/client-node';
import type { ConfigurationOptions, KubeConfig, ObservableMiddleware, RequestContext, ResponseContext } from '@kubernetes/client-node';

export interface KubeApis {
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  admissionRegistration: AdmissionregistrationV1Api;
  kubeConfig: KubeConfig;
  /** The API server's URL, for messages. */
  server: string;
  /** Options for one call: abort on `signal`, optionally a Content-Type (patches). */
  callOptions(signal?: AbortSignal, contentType?: string): ConfigurationOptions<ObservableMiddleware>;
  /** Requests sent so far (not counting watch streams). */
  readonly requestCount: number;
  /** Close the kept-alive connections. */
  close(): void;
}

/** What a failed API call means for the caller. */
export const ApiFailureKind = {
  /** 409 with reason Conflict: the resourceVersion sent is stale. */
  Conflict: 'conflict',
  /** 409 with reason AlreadyExists: create of a name that exists. */
  AlreadyExists: 'already-exists',
  NotFound: 'not-found',
  /** 401/403: credentials or RBAC. */
  Forbidden: 'forbidden',
  /** Network failure: refused, reset, timed out, DNS. */
  Unreachable: 'unreachable',
  /** 5xx or 429: worth another try. */
  ServerError: 'server-error',
  /** The caller's signal fired. */
  Aborted: 'aborted',
  /** Anything else (400, 422, ...). */
  Rejected: 'rejected',
} as const;
export type ApiFailureKind = (typeof ApiFailureKind)[keyof typeof ApiFailureKind];

export interface ApiFailure {
  kind: ApiFailureKind;
  /** HTTP status when the server answered. */
  status: number | null;
  /** The server's message or the network error, short. */
  detail: string;
}

/** A Kubernetes API call failed; the message says what failed and what to check. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    message: string,
    readonly failure: ApiFailure,
  ) {
    super(message);
  }
}

function statusMessage(body: unknown): string | null {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.length > 0 ? body.slice(0, 300) : null;
    }
  }
  if (parsed !== null && typeof parsed === 'object') {
    const message = (parsed as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  return null;
}

function statusReason(body: unknown): string | null {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return null;
    }
  }
  if (parsed !== null && typeof parsed === 'object') {
    const reason = (parsed as { reason?: unknown }).reason;
    if (typeof reason === 'string') return reason;
  }
  return null;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** Classify an error thrown by a client call. */
export function classifyApiError(err: unknown): ApiFailure {
  if (err instanceof ApiException) {
    const status = err.code;
    const detail = statusMessage(err.body) ?? `HTTP ${status}`;
    if (status === 409) {
      return { kind: statusReason(err.body) === 'AlreadyExists' ? ApiFailureKind.AlreadyExists : ApiFailureKind.Conflict, status, detail };
    }
    if (status === 404) return { kind: ApiFailureKind.NotFound, status, detail };
    if (status === 401 || status === 403) return { kind: ApiFailureKind.Forbidden, status, detail };
    if (status >= 500 || status === 429) return { kind: ApiFailureKind.ServerError, status, detail };
    return { kind: ApiFailureKind.Rejected, status, detail };
  }
  const error = err as { name?: string; code?: string; type?: string; message?: string; errno?: string } | null;
  if (error?.name === 'AbortError' || error?.type === 'aborted') return { kind: ApiFailureKind.Aborted, status: null, detail: 'the request was abandoned when its deadline passed' };
  const code = error?.code ?? error?.errno;
  if ((code !== undefined && NETWORK_CODES.has(code)) || error?.type === 'system' || error?.name === 'FetchError') {
    return { kind: ApiFailureKind.Unreachable, status: null, detail: error?.message ?? String(code) };
  }
  return { kind: ApiFailureKind.Rejected, status: null, detail: error?.message ?? String(err) };
}

/** True for failures another try may fix. */
export function isTransient(failure: ApiFailure): boolean {
  return failure.kind === ApiFailureKind.Unreachable || failure.kind === ApiFailureKind.ServerError;
}

/** A user-facing error for a failed call: what was attempted, what went wrong, what to check. */
export function describeApiFailure(action: string, failure: ApiFailure, server: string): KubeApiError {
  let hint: string;
  switch (failure.kind) {
    case ApiFailureKind.Unreachable:
      hint = `the Kubernetes API server at ${server} is unreachable (${failure.detail}); check that the API server is up and that the webhook pod can reach it (NetworkPolicy egress, service account token)`;
      break;
    case ApiFailureKind.ServerError:
      hint = `the Kubernetes API server at ${server} answered ${failure.status ?? ''} (${failure.detail}); it is overloaded or unhealthy: check the API server and etcd`;
      break;
    case ApiFailureKind.Forbidden:
      hint = `the API server refused it (${failure.status ?? ''}: ${failure.detail}); check the webhook's ServiceAccount and its Role/ClusterRole (docs/rbac.md lists every permission)`;
      break;
    case ApiFailureKind.Aborted:
      hint = `the admission deadline passed while waiting for the API server at ${server}; check API server latency, or raise server.admissionTimeoutMs (below the webhook's timeoutSeconds)`;
      break;
    default:
      hint = `the API server rejected it (${failure.status ?? 'no status'}: ${failure.detail})`;
  }
  return new KubeApiError(`${action} failed: ${hint}`, failure);
}

/** Run a call, retrying transient failures a few times with a short backoff, within the signal. */
export async function withTransientRetry<T>(call: () => Promise<T>, opts: { signal?: AbortSignal; retries: number; baseDelayMs?: number }): Promise<T> {
  const baseDelayMs = opts.baseDelayMs ?? 50;
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const failure = classifyApiError(err);
      if (!isTransient(failure) || attempt >= opts.retries || opts.signal?.aborted) throw err;
      await abortableDelay(baseDelayMs * 2 ** attempt, opts.signal);
    }
  }
}

/** Resolve after ms, or early (without throwing) when the signal fires. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function agentKey(options: https.AgentOptions): string {
  return [options.ca, options.cert, options.key, options.pfx, options.rejectUnauthorized, options.servername].map((v) => (v === undefined ? '' : String(v))).join('\u0000');
}

/** Build the API clients for a KubeConfig (in-cluster, a kubeconfig file, or a test's stand-in). */
export function createKubeApis(kubeConfig: KubeConfig): KubeApis {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) {
    throw new KubeApiError(
      'no Kubernetes cluster is configured: run the webhook in a pod with a service account, or point KUBECONFIG at a kubeconfig with a current context; set cluster.enabled to false to run without the API',
      { kind: ApiFailureKind.Rejected, status: null, detail: 'no current cluster' },
    );
  }
  let requestCount = 0;
  const keepAlive = new Map<string, http.Agent>();

  /** Swap the per-request agent the client made for a kept-alive one with the same TLS settings. */
  const shareAgent = (context: RequestContext): void => {
    const made = context.getAgent();
    if (made === undefined) return;
    // Proxy agents (HTTP(S)_PROXY in the kubeconfig) are subclasses: leave them alone.
    if (made.constructor !== https.Agent && made.constructor !== http.Agent) return;
    const options = (made as https.Agent).options as https.AgentOptions;
    const key = `${made.constructor === https.Agent ? 'https' : 'http'}\u0000${agentKey(options)}`;
    let shared = keepAlive.get(key);
    if (shared === undefined) {
      const agentOptions = { ...options, keepAlive: true, maxSockets: 64, maxFreeSockets: 16, timeout: 60_000 };
      shared = made.constructor === https.Agent ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
      keepAlive.set(key, shared);
    }
    made.destroy();
    context.setAgent(shared);
  };

  const baseMiddleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      requestCount++;
      shareAgent(context);
      return new Observable(Promise.resolve(context));
    },
    post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
  };
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kubeConfig },
    middleware: [baseMiddleware],
  });

  return {
    core: new CoreV1Api(configuration),
    coordination: new CoordinationV1Api(configuration),
    admissionRegistration: new AdmissionregistrationV1Api(configuration),
    kubeConfig,
    server: cluster.server,
    callOptions(signal?: AbortSignal, contentType?: string): ConfigurationOptions<ObservableMiddleware> {
      const perCall: ObservableMiddleware = {
        pre: (context: RequestContext) => {
          if (signal !== undefined) context.setSignal(signal);
          if (contentType !== undefined) context.setHeaderParam('Content-Type', contentType);
          return new Observable(Promise.resolve(context));
        },
        post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
      };
      return { middleware: [perCall], middlewareMergeStrategy: 'append' };
    },
    get requestCount() {
      return requestCount;
    },
    close(): void {
      for (const agent of keepAlive.values()) agent.destroy();
      keepAlive.clear();
    },
  };
}
