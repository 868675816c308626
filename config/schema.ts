/**
 * The webhook's configuration: one typed object, every field defaulted and validated.
 * Pure: parsing text into a Config; reading files is the caller's business.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_TLS_CIPHERS, TlsMinVersion, tlsPolicyProblem } from '../certs/tlsPolicy.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_PROMETHEUS_MAX_BODY_BYTES, FileSampleTime } from '../dcgm/ingestionLimits.js';

const toleration = z
  .object({
    key: z.string().optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute', '']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .strict();

const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T|k)?$/, 'must be a Kubernetes quantity such as "8Gi", "8192Mi" or "10G"');

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('0.0.0.0'),
        /** 0 picks a free port (tests, local runs). */
        port: z.number().int().min(0).max(65535).default(8443),
        tlsCertFile: z.string().default('/etc/mps-injector/tls/tls.crt'),
        tlsKeyFile: z.string().default('/etc/mps-injector/tls/tls.key'),
        /** Mutual TLS: PEM CA certificate(s) that client certificates must chain to; /mutate then serves only such clients. Empty: off. Reloaded on change. */
        clientCAFile: z.string().default(''),
        /** Oldest TLS version served. */
        tlsMinVersion: z.enum([TlsMinVersion.Tls12, TlsMinVersion.Tls13]).default(TlsMinVersion.Tls12),
        /** OpenSSL cipher list (TLS 1.3 and 1.2 names, ':'-separated). Default: TLS 1.3 suites and TLS 1.2 ECDHE with AEAD only. */
        tlsCiphers: z.string().min(1).default(DEFAULT_TLS_CIPHERS),
        /** AdmissionReview bodies above this are answered 413. */
        maxBodyBytes: z.number().int().positive().default(3 * 1024 * 1024),
        /**
         * AdmissionReview bodies above this are parsed, screened and injected off the event loop, on a worker
         * thread (ADR 0015, ADR 0010); the event loop only places them. 0: every body.
         */
        offloadBodyBytes: z.number().int().min(0).default(0),
        /** Worker threads that parse, screen and inject; 0: every body is handled on the event loop. */
        offloadWorkers: z.number().int().min(0).max(16).default(2),
        /** Deadline for answering one admission, including the reservation commit; keep it below the webhook's timeoutSeconds. */
        admissionTimeoutMs: z.number().int().positive().default(4000),
        /** On SIGTERM, in-flight requests get this long to finish. */
        shutdownGraceSeconds: z.number().positive().default(20),
        /** On SIGTERM, keep accepting this long (readiness failing, every answer with Connection: close) while endpoints update. */
        drainDelaySeconds: z.number().min(0).max(300).default(5),
        logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    metrics: z
      .object({
        /** Where DCGM metrics come from. */
        source: z.enum(['file', 'exporters', 'prometheus', 'discovery']).default('discovery'),
        /** source=file: path of a dcgm-exporter /metrics dump. */
        file: z.string().default(''),
        /** source=exporters: dcgm-exporter /metrics URLs, scraped concurrently. */
        exporterUrls: z.array(z.string().url()).default([]),
        /** source=exporters: node name of each URL (same order), when known; else the host label is used. */
        exporterNodes: z.array(z.string()).default([]),
        /** source=discovery: find dcgm-exporter pods through the Kubernetes API and scrape each pod IP. */
        discovery: z
          .object({
            namespace: z.string().default('gpu-operator'),
            labelSelector: z.string().default('app=nvidia-dcgm-exporter'),
            port: z.number().int().min(1).max(65535).default(9400),
            path: z.string().startsWith('/').default('/metrics'),
          })
          .strict()
          .default({}),
        /** source=prometheus: base URL of the Prometheus HTTP API. */
        prometheusUrl: z.string().default(''),
        /** Background refresh interval. */
        refreshSeconds: z.number().positive().default(15),
        /** Timeout of one scrape or query. */
        timeoutMs: z.number().int().positive().default(2000),
        /** A dcgm-exporter scrape (or the metrics.file dump) larger than this is refused; the read stops there. */
        maxBodyBytes: z.number().int().positive().default(DEFAULT_MAX_BODY_BYTES),
        /** source=prometheus: an answer larger than this is refused. */
        prometheusMaxBodyBytes: z.number().int().positive().default(DEFAULT_PROMETHEUS_MAX_BODY_BYTES),
        /** source=file (and `inject --metrics`): samples count as taken when the dump is read, or at its modification time. */
        fileSampleTime: z.enum([FileSampleTime.Read, FileSampleTime.Modified]).default(FileSampleTime.Read),
      })
      .strict()
      .default({}),
    placement: z
      .object({
        policy: z.enum(['binpack', 'spread']).default('binpack'),
        maxMetricsAgeSeconds: z.number().positive().default(90),
        memorySafetyMarginMiB: z.number().int().min(0).default(1024),
        /** A reservation is taken as inside a GPU sample only once its pod's GPU containers ran this long before the sample (image pull and model load come first). */
        observeAfterRunningSeconds: z.number().min(0).default(300),
        maxClientsPerGpu: z.number().int().min(1).max(48).default(48),
        maxThreadPercentSum: z.number().int().min(1).max(1000).default(200),
        /** Sum of thread percentages granted to `high` pods on one GPU; all pods together stay within maxThreadPercentSum. */
        maxHighThreadPercentSum: z.number().int().min(1).max(1000).default(100),
        minThreadPercent: z.number().int().min(1).max(100).default(10),
        maxThreadPercent: z.number().int().min(1).max(100).default(100),
        /** Per priority: the injected CUDA_MPS_ACTIVE_THREAD_PERCENTAGE is min(100, ceil(grant x factor)); budgets count grants. 1: the limit is the grant. */
        threadCeilingFactor: z
          .object({ high: z.number().min(1).max(100).default(1), low: z.number().min(1).max(100).default(1) })
          .strict()
          .default({}),
        hotUtilPercent: z.number().min(0).max(100).default(85),
        hotGpuAction: z.enum(['deprioritise', 'exclude']).default('deprioritise'),
        gpuModelNodeLabel: z.string().default('nvidia.com/gpu.product'),
      })
      .strict()
      .default({}),
    requests: z
      .object({
        /** Pinned memory for a pod without the gpu-memory annotation. */
        defaultGpuMemory: quantity.default('4Gi'),
        /** A pod whose spec.priority is at least this is `high` unless its annotation says otherwise. */
        highPriorityThreshold: z.number().int().default(1000),
      })
      .strict()
      .default({}),
    reservations: z
      .object({
        /** An unconfirmed reservation (its pod never appeared) is released after this. */
        ttlSeconds: z.number().positive().default(120),
      })
      .strict()
      .default({}),
    decisions: z
      .object({
        /** File holding the key that seals decisions (32+ bytes). Empty: cluster mode keeps it in a Secret; otherwise a random key per process. */
        keyFile: z.string().default(''),
        /** Secret (in the webhook's namespace) that holds the decision keys in cluster mode; created on first start. */
        keySecretName: z.string().min(1).default('mps-injector-decision-key'),
        /** A sealed decision on a pod being created is honoured as a reinvocation only this long after it was issued. */
        reinvocationWindowSeconds: z.number().positive().max(600).default(30),
      })
      .strict()
      .default({}),
    injection: z
      .object({
        /** Node path of the MPS pipe directory (the control daemon's CUDA_MPS_PIPE_DIRECTORY). */
        hostPipeDirectory: z.string().startsWith('/').default('/run/nvidia/mps/pipe'),
        /** Where the pipe directory is mounted in containers. */
        containerPipeDirectory: z.string().startsWith('/').default('/run/nvidia/mps/pipe'),
        /** Mount the daemon's shm directory at /dev/shm. */
        mountShm: z.boolean().default(true),
        /** Node path of the MPS daemon's shm directory. */
        hostShmDirectory: z.string().startsWith('/').default('/run/nvidia/mps/shm'),
        /** Set NVIDIA_VISIBLE_DEVICES to the chosen GPU's UUID. */
        setVisibleDevices: z.boolean().default(true),
        /** A pod that reaches MPS around the injector (MPS env in an unselected, init or ephemeral container; its own hostPath at, under or above the MPS directories; a mount over the pipe): reject it, or strip those parts with a warning. */
        mpsAccessPolicy: z.enum(['reject', 'strip']).default('reject'),
        /** Tolerations added to every injected pod (not duplicated). */
        tolerations: z.array(toleration).default([]),
        /** A pod that selects more containers for the GPU is refused: each is an MPS client, and a GPU serves at most 48. */
        maxGpuContainers: z.number().int().min(1).max(48).default(48),
        initContainer: z
          .object({
            image: z.string().min(1).default('busybox:1.36'),
            imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
            /** How long the init container waits for the control pipe before failing. */
            timeoutSeconds: z.number().int().positive().default(120),
            /** Replaces the built-in wait command when non-empty. MPS_PIPE, MPS_TIMEOUT and MPS_NODE are set in its env. */
            command: z.array(z.string()).default([]),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    cluster: z
      .object({
        /** Talk to the Kubernetes API: pod/node informers, durable reservations, exporter discovery, certificates. */
        enabled: z.boolean().default(false),
        /** Namespace the webhook runs in (where its Secret and reservation objects live). Empty: $POD_NAMESPACE. */
        namespace: z.string().default(''),
        /** Tries to commit a reservation when another replica wrote first. */
        maxCommitAttempts: z.number().int().min(1).max(20).default(5),
        /** MPS control-daemon pods, found through a pod watch: placement only picks nodes where one is Ready. */
        mpsDaemon: z
          .object({
            /** Exclude nodes with no Ready daemon pod. Off: every node counts as running MPS (clusters that run it another way). */
            required: z.boolean().default(true),
            /** Namespace of the daemon pods. Empty: the webhook's own namespace, where the chart runs its daemon. */
            namespace: z.string().default(''),
            /** Label selector of the daemon pods (the chart's daemon by default). */
            labelSelector: z.string().min(1).default('app.kubernetes.io/name=mps-injector,app.kubernetes.io/component=mps-daemon'),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    certificates: z
      .object({
        /** files: serve server.tlsCertFile/tlsKeyFile as mounted (cert-manager or a user Secret) and reload on change.
         *  self-managed: create/load a CA and serving pair in a Secret, write them to the TLS files, patch caBundle, rotate. */
        mode: z.enum(['files', 'self-managed']).default('files'),
        secretName: z.string().default('mps-injector-tls'),
        serviceName: z.string().default('mps-injector'),
        mutatingWebhookConfigurationName: z.string().default('mps-injector'),
        caValidityDays: z.number().int().positive().default(3650),
        leafValidityDays: z.number().int().positive().default(30),
        /** Renew the serving certificate when this fraction of its life has passed. */
        renewAtFraction: z.number().gt(0).lt(1).default(2 / 3),
      })
      .strict()
      .default({}),
    failure: z
      .object({
        /** No GPU fits: reject the pod with the reason, or allow it unmutated with a warning. */
        onNoFit: z.enum(['reject', 'allow']).default('reject'),
        /** No metrics younger than placement.maxMetricsAgeSeconds: reject, or allow unmutated with a warning. */
        onNoMetrics: z.enum(['reject', 'allow']).default('reject'),
      })
      .strict()
      .default({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

/** Thrown for a configuration that cannot be used; the message names every bad field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function describeIssues(error: z.ZodError, origin: string): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `  - ${path}: ${issue.message}`;
  });
  return `invalid configuration in ${origin}:\n${lines.join('\n')}\nFix these fields (see the README's configuration section for every field and its default).`;
}

/** Validate a plain object (already parsed) into a Config with defaults filled in. */
export function buildConfig(input: unknown, origin = 'configuration'): Config {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(describeIssues(result.error, origin));
  const config = result.data;
  const tlsProblem = tlsPolicyProblem({ minVersion: config.server.tlsMinVersion, ciphers: config.server.tlsCiphers });
  if (tlsProblem !== null) throw new ConfigError(`invalid configuration in ${origin}:\n  - ${tlsProblem}`);
  if (config.placement.minThreadPercent > config.placement.maxThreadPercent) {
    throw new ConfigError(
      `invalid configuration in ${origin}:\n  - placement.minThreadPercent (${config.placement.minThreadPercent}) is above placement.maxThreadPercent (${config.placement.maxThreadPercent})\nMake the minimum at most the maximum.`,
    );
  }
  return config;
}

/** Parse YAML (or JSON) text into a validated Config. */
export function parseConfigText(text: string, origin = 'configuration'): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`cannot parse ${origin} as YAML: ${(err as Error).message}`);
  }
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(`${origin} must be a YAML mapping of sections (server, metrics, placement, ...), got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  return buildConfig(raw, origin);
}

export const defaultConfig = (): Config => buildConfig({});
