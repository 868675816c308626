/**
 * Node facts for placement: schedulable or not (and why), and labels. Pure.
 */
import type { NodeState } from '../domain/inventory.js';

/** The parts of a Node this module reads (V1Node and raw watch JSON both fit). */
export interface NodeLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { unschedulable?: boolean };
  status?: { conditions?: { type?: string; status?: string; reason?: string }[] };
}

/** Schedulable unless cordoned or not Ready; the reason reads well in a refusal message. */
export function nodeStateOf(node: NodeLike): NodeState {
  const name = node.metadata?.name ?? '';
  const labels = { ...(node.metadata?.labels ?? {}) };
  if (node.spec?.unschedulable === true) return { name, schedulable: false, unschedulableReason: 'cordoned', labels };
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready === undefined) return { name, schedulable: false, unschedulableReason: 'NotReady (no Ready condition reported)', labels };
  if (ready.status === 'Unknown') return { name, schedulable: false, unschedulableReason: 'NotReady (kubelet stopped reporting)', labels };
  if (ready.status !== 'True') {
    return { name, schedulable: false, unschedulableReason: ready.reason ? `NotReady (${ready.reason})` : 'NotReady', labels };
  }
  return { name, schedulable: true, labels };
}

/** Node states by name, kept by the node informer (and the MPS daemon watch, when one runs). */
export class NodeStateTable {
  private readonly states = new Map<string, NodeState>();
  private cached: Readonly<Record<string, NodeState>> | null = null;
  /** Nodes with a Ready MPS daemon; null while daemons are not checked (no mpsDaemonReady in the states). */
  private mpsDaemonNodes: ReadonlySet<string> | null = null;

  /** From now on every state carries mpsDaemonReady: whether its node is in this set. */
  setMpsDaemonNodes(nodes: ReadonlySet<string>): void {
    this.mpsDaemonNodes = nodes;
    this.cached = null;
  }

  upsert(node: NodeLike): void {
    const state = nodeStateOf(node);
    if (state.name === '') return;
    this.states.set(state.name, state);
    this.cached = null;
  }

  remove(node: NodeLike): void {
    const name = node.metadata?.name;
    if (name !== undefined && this.states.delete(name)) this.cached = null;
  }

  has(name: string): boolean {
    return this.states.has(name);
  }

  /** A frozen snapshot, rebuilt only after a change: cheap to call on every admission. */
  snapshot(): Readonly<Record<string, NodeState>> {
    if (this.cached === null) {
      const daemons = this.mpsDaemonNodes;
      const states = daemons === null ? this.states : new Map([...this.states].map(([name, state]) => [name, { ...state, mpsDaemonReady: daemons.has(name) }]));
      this.cached = Object.freeze(Object.fromEntries(states));
    }
    return this.cached;
  }
}
