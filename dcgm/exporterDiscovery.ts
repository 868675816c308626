/**
 * DCGM exporter discovery: the exporter pods (by namespace and label selector) are watched
 * through the API; each fetch scrapes every running exporter pod's IP concurrently, and maps
 * its GPUs to the pod's spec.nodeName (the exporter's host label is the pod's own name when
 * NODE_NAME is unset, so it is not trusted for this).
 */
import { isIP } from 'node:net';
import type { GpuInventory, NodeState } from '../domain/inventory.js';
import { ExporterMetricsSource } from './sources.js';
import type { MetricsSource } from './sources.js';

/** What discovery needs to know of an exporter pod. */
export interface ExporterPod {
  namespace: string;
  name: string;
  podIP: string | null;
  nodeName: string | null;
  phase: string | null;
  terminating: boolean;
}

/** The parts of a Pod read here (V1Pod and raw watch JSON both fit). */
export interface ExporterPodLike {
  metadata?: { name?: string; namespace?: string; deletionTimestamp?: Date | string };
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string };
}

export function exporterPodOf(pod: ExporterPodLike): ExporterPod {
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    podIP: pod.status?.podIP || null,
    nodeName: pod.spec?.nodeName || null,
    phase: pod.status?.phase ?? null,
    terminating: pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null,
  };
}

export interface ExporterTarget {
  url: string;
  node: string;
}

/** The metrics URL of an exporter pod: http://<pod IP>:<port><path> (IPv6 in brackets). */
export function exporterUrl(pod: ExporterPod, port: number, path: string): string {
  const host = pod.podIP !== null && isIP(pod.podIP) === 6 ? `[${pod.podIP}]` : (pod.podIP ?? '');
  return `http://${host}:${port}${path}`;
}

/**
 * Scrape targets from exporter pods: running, not terminating, with an IP and a node.
 * The rest are named in `skipped` (one phrase each) for the inventory's problems.
 */
export function exporterTargets(pods: readonly ExporterPod[], urlFor: (pod: ExporterPod) => string): { targets: ExporterTarget[]; skipped: string[] } {
  const targets: ExporterTarget[] = [];
  const skipped: string[] = [];
  for (const pod of [...pods].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))) {
    const label = `${pod.namespace}/${pod.name}`;
    if (pod.terminating) skipped.push(`${label} is terminating`);
    else if (pod.phase !== 'Running') skipped.push(`${label} is ${pod.phase ?? 'not yet scheduled'}`);
    else if (pod.podIP === null) skipped.push(`${label} has no pod IP yet`);
    else if (pod.nodeName === null) skipped.push(`${label} has no node`);
    else targets.push({ url: urlFor(pod), node: pod.nodeName });
  }
  return { targets, skipped };
}

export interface DiscoveredExporterSourceOptions {
  namespace: string;
  labelSelector: string;
  /** Exporter pods known now (from the informer). */
  pods: () => readonly ExporterPod[];
  /** Node facts to attach to the inventory. */
  nodes: () => Readonly<Record<string, NodeState>>;
  urlFor: (pod: ExporterPod) => string;
  /** Timeout of each scrape. */
  timeoutMs: number;
  /** A scrape whose body is larger is refused (default: the sources' default). */
  maxBodyBytes?: number;
  /** Builds the scraper for a target set (tests may substitute). */
  createSource?: (targets: ExporterTarget[], timeoutMs: number) => MetricsSource;
}

/** A MetricsSource that scrapes whatever exporter pods the API lists now. */
export class DiscoveredExporterSource implements MetricsSource {
  readonly name: string;
  private readonly opts: DiscoveredExporterSourceOptions;
  private cached: { key: string; source: MetricsSource } | null = null;

  constructor(opts: DiscoveredExporterSourceOptions) {
    this.opts = opts;
    this.name = `discovery:${opts.namespace}/${opts.labelSelector}`;
  }

  async fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    const { targets, skipped } = exporterTargets(this.opts.pods(), this.opts.urlFor);
    const nodes = this.opts.nodes();
    if (targets.length === 0) {
      return {
        gpus: [],
        nodes: { ...nodes },
        source: `${this.name} (0 exporters)`,
        fetchedAtMs: nowMs,
        skippedLines: 0,
        problems: [
          `no running dcgm-exporter pod found in namespace ${this.opts.namespace} with labels ${this.opts.labelSelector}${skipped.length > 0 ? ` (${skipped.join('; ')})` : ''}; check metrics.discovery.namespace and labelSelector against \`kubectl get pods -A -l ${this.opts.labelSelector}\``,
        ],
      };
    }
    const key = targets.map((t) => `${t.url}@${t.node}`).join(',');
    if (this.cached?.key !== key) {
      const maxBodyBytes = this.opts.maxBodyBytes;
      const create =
        this.opts.createSource ??
        ((t: ExporterTarget[], timeoutMs: number) => new ExporterMetricsSource({ targets: t, timeoutMs, ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}) }));
      this.cached = { key, source: create(targets, this.opts.timeoutMs) };
    }
    const inventory = await this.cached.source.fetch(nowMs, signal);
    return {
      ...inventory,
      nodes: { ...inventory.nodes, ...nodes },
      source: `${this.name} ${inventory.source}`,
      problems: [...skipped.map((s) => `dcgm-exporter pod ${s}: not scraped`), ...inventory.problems],
    };
  }
}
