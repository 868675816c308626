/**
 * Which nodes have a Ready MPS control-daemon pod, from the daemon pods a watch reports. Pure.
 * Ready means what the kubelet says: the pod runs, its Ready condition is True (the chart's
 * daemon is Ready only while its control pipe answers), and it is not being deleted.
 */

/** The parts of a Pod this module reads (V1Pod and raw watch JSON both fit). */
export interface DaemonPodLike {
  metadata?: { uid?: string; namespace?: string; name?: string; deletionTimestamp?: unknown };
  spec?: { nodeName?: string };
  status?: { phase?: string; conditions?: { type?: string; status?: string }[] };
}

/** True when the daemon pod runs on a node and the kubelet reports it Ready. */
export function isMpsDaemonPodReady(pod: DaemonPodLike): boolean {
  if (pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) return false;
  if (!pod.spec?.nodeName || pod.status?.phase !== 'Running') return false;
  return pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function keyOf(pod: DaemonPodLike): string | null {
  const uid = pod.metadata?.uid;
  if (uid) return uid;
  const name = pod.metadata?.name;
  return name ? `${pod.metadata?.namespace ?? ''}/${name}` : null;
}

/** Daemon pods by identity, and the nodes where at least one of them is Ready. */
export class MpsDaemonTable {
  private readonly pods = new Map<string, { node: string; ready: boolean }>();
  private cached: ReadonlySet<string> | null = null;

  /** Records a daemon pod as the watch reports it; true when the set of ready nodes may have changed. */
  upsert(pod: DaemonPodLike): boolean {
    const key = keyOf(pod);
    if (key === null) return false;
    const next = { node: pod.spec?.nodeName ?? '', ready: isMpsDaemonPodReady(pod) };
    const previous = this.pods.get(key);
    this.pods.set(key, next);
    if (previous !== undefined && previous.node === next.node && previous.ready === next.ready) return false;
    this.cached = null;
    return true;
  }

  /** Forgets a daemon pod; true when the set of ready nodes may have changed. */
  remove(pod: DaemonPodLike): boolean {
    const key = keyOf(pod);
    if (key === null || !this.pods.delete(key)) return false;
    this.cached = null;
    return true;
  }

  /** Nodes with at least one Ready daemon pod (a frozen set, rebuilt only after a change). */
  readyNodes(): ReadonlySet<string> {
    if (this.cached === null) {
      const nodes = new Set<string>();
      for (const { node, ready } of this.pods.values()) if (ready && node !== '') nodes.add(node);
      this.cached = nodes;
    }
    return this.cached;
  }
}
