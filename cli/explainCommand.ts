/**
 * `mps-injector explain POD` (and `kubectl mps explain`): the decision a pod carries, whether
 * the webhook really issued it (its seal verifies under the keys the replicas share), whether
 * the ledger holds its capacity, and what placement would do with the pod now: chooseSlot over
 * the live state (never reserving), with the rule that excluded each GPU it did not choose.
 */
import type { Command } from 'commander';
import type { V1Pod } from '@kubernetes/client-node';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { formatMiB } from '../domain/quantity.js';
import type { GpuInventory } from '../domain/inventory.js';
import { RECORD_ANNOTATIONS, SEAL_ANNOTATION, randomKeyRing, readDecisionRecord, storedPodKey } from '../domain/decisionRecord.js';
import type { DecisionRecord } from '../domain/decisionRecord.js';
import { HOSTNAME_LABEL, Label } from '../domain/names.js';
import { InvalidPodError, readSlotRequest } from '../injector/readSlotRequest.js';
import { chooseSlot } from '../placement/chooseSlot.js';
import { withThreadCeiling } from '../placement/threadCeiling.js';
import type { ReservationLedger } from '../reservations/ledger.js';
import type { LedgerView, Reservation, SlotDecision, SlotRequest } from '../domain/slot.js';
import { ApiFailureKind, classifyApiError, describeApiFailure } from '../kube/kubeApis.js';
import type { ClusterCommandDeps, ClusterCommandFlags } from './clusterFlags.js';
import { addClusterFlags, clusterStateFor } from './clusterFlags.js';
import type { ClusterState } from './clusterState.js';
import { asInputError } from './clusterState.js';
import { CliError, EXIT_CODES_HELP, ExitCode } from './cliError.js';
import { OutputFormat, formatAge, formatDocument, formatTable, textOutputOption } from './outputFormat.js';
import type { CommandRun } from './statusCommand.js';

/** How far the pod's recorded decision can be trusted. */
export const DecisionStatus = {
  /** The webhook issued it for this pod: its seal verifies. */
  Genuine: 'genuine',
  /** Decision annotations or the injected label the webhook did not issue (or issued to another pod). */
  Forged: 'forged',
  /** The pod carries no decision. */
  None: 'none',
  /** The decision key Secret is missing: nothing can be verified. */
  Unverifiable: 'unverifiable',
} as const;
export type DecisionStatus = (typeof DecisionStatus)[keyof typeof DecisionStatus];

/** One GPU as placement judged it for this pod now. */
export interface GpuVerdict {
  node: string;
  index: number;
  uuid: string;
  /** 'chosen', 'fits' (a candidate that scored lower), or the exclusion rule (memory, stale, client-cap, ...). */
  rule: string;
  detail: string;
}

export interface Explanation {
  pod: string;
  phase: string | null;
  nodeName: string | null;
  decision: {
    status: DecisionStatus;
    /** Why it is not genuine, or why it cannot be checked. */
    why: string | null;
    record: (Omit<DecisionRecord, 'pod' | 'issuedAtMs'> & { issuedAt: string; ageSeconds: number }) | null;
  };
  /** The capacity the ledger holds for the recorded reservation; null when it holds none. */
  reservation: { id: string; state: string; runningSince: string | null; memoryMiB: number; threadPercent: number; threadCeilingPercent: number } | null;
  now: {
    /** 'placed': a GPU fits; 'refused': none does; 'skipped': the webhook would not place the pod at all. */
    outcome: 'placed' | 'refused' | 'skipped';
    summary: string;
    /** The request placement read from the pod (its decision and the node pin the webhook wrote left out). */
    request: Pick<SlotRequest, 'memoryMiB' | 'threadPercent' | 'threadPercentLimit' | 'priority' | 'gpuModel' | 'pinnedNode'> | null;
    gpus: GpuVerdict[];
  };
}

/** A ledger without one reservation: the pod's own, so placement judges it as if it arrived now. */
function ledgerWithout(ledger: ReservationLedger, reservationId: string | null): LedgerView {
  if (reservationId === null) return ledger;
  return { onGpu: (uuid, nowMs) => ledger.onGpu(uuid, nowMs).filter((r: Reservation) => r.id !== reservationId) };
}

/** The pod as it was before the webhook touched it, as far as placement reads it: no record, no injected label, no node pin of the webhook's. */
function asSubmitted(pod: Pod, recordedNode: string | null): Pod {
  const annotations = { ...(pod.metadata?.annotations ?? {}) };
  for (const name of RECORD_ANNOTATIONS) delete annotations[name];
  const labels = { ...(pod.metadata?.labels ?? {}) };
  delete labels[Label.Injected];
  const nodeSelector = { ...(pod.spec?.nodeSelector ?? {}) };
  if (recordedNode !== null && nodeSelector[HOSTNAME_LABEL] === recordedNode) delete nodeSelector[HOSTNAME_LABEL];
  return { ...pod, metadata: { ...pod.metadata, annotations, labels }, spec: { ...pod.spec, containers: pod.spec?.containers ?? [], nodeSelector } };
}

/** Why one GPU is or is not a candidate: chooseSlot over an inventory of that GPU alone. */
function verdictOf(inventory: GpuInventory, index: number, ledger: LedgerView, request: SlotRequest, state: ClusterState): GpuVerdict {
  const gpu = inventory.gpus[index];
  if (gpu === undefined) throw new Error('GPU index out of range');
  const placement = state.target.config.placement;
  const decision = chooseSlot({ ...inventory, gpus: [gpu] }, ledger, request, placement, state.nowMs);
  const base = { node: gpu.node, index: gpu.index, uuid: gpu.uuid };
  if (decision.ok) return { ...base, rule: 'fits', detail: decision.reason };
  const rule = Object.keys(decision.excluded)[0] ?? decision.code;
  if (rule === 'stale') return { ...base, rule, detail: `sample ${Math.floor((state.nowMs - gpu.sampledAtMs) / 1000)}s old, above placement.maxMetricsAgeSeconds (${placement.maxMetricsAgeSeconds}s)` };
  const detail = decision.reason.replace(/^.*?: 1 considered, 1 /, '');
  return { ...base, rule, detail };
}

function placementNow(pod: Pod, namespace: string, recordedReservation: string | null, recordedNode: string | null, state: ClusterState): Explanation['now'] {
  let request: SlotRequest;
  try {
    const intent = readSlotRequest(asSubmitted(pod, recordedNode), { namespace, requestUid: pod.metadata?.uid ?? 'explain', config: state.target.config, keys: state.keys ?? randomKeyRing() });
    if (intent.kind === 'skip') return { outcome: 'skipped', summary: `the webhook would not place it: ${intent.reason}`, request: null, gpus: [] };
    if (intent.kind === 'reinject') return { outcome: 'skipped', summary: 'the webhook would keep its recorded decision', request: null, gpus: [] };
    request = intent.request;
  } catch (err) {
    if (err instanceof InvalidPodError) return { outcome: 'skipped', summary: `the webhook would refuse it: ${err.message}`, request: null, gpus: [] };
    throw err;
  }
  const ledger = ledgerWithout(state.ledger, recordedReservation);
  const inventory = state.inventory;
  const decision: SlotDecision = withThreadCeiling(chooseSlot(inventory, ledger, request, state.target.config.placement, state.nowMs), request, state.target.config.placement);
  const gpus = inventory.gpus.map((_, i) => verdictOf(inventory, i, ledger, request, state));
  if (decision.ok) {
    for (const v of gpus) if (v.uuid === decision.gpuUuid) v.rule = 'chosen';
  }
  const { memoryMiB, threadPercent, threadPercentLimit, priority, gpuModel, pinnedNode } = request;
  return {
    outcome: decision.ok ? 'placed' : 'refused',
    summary: decision.ok ? `would choose ${decision.node} GPU ${decision.gpuIndex}: ${decision.reason}` : `would refuse it: ${decision.reason}`,
    request: { memoryMiB, threadPercent, ...(threadPercentLimit !== undefined ? { threadPercentLimit } : {}), priority, gpuModel, pinnedNode },
    gpus,
  };
}

/** Explain one pod against the state read from the cluster. Pure. */
export function explainPod(pod: Pod, state: ClusterState): Explanation {
  const namespace = pod.metadata?.namespace ?? 'default';
  const key = storedPodKey(pod);
  let status: DecisionStatus;
  let why: string | null = null;
  let record: DecisionRecord | null = null;
  const reading = state.keys === null ? null : readDecisionRecord(pod, state.keys, namespace);
  if (reading === null) {
    const claims = Object.keys(pod.metadata?.annotations ?? {}).some((a) => a === SEAL_ANNOTATION);
    status = claims ? DecisionStatus.Unverifiable : DecisionStatus.None;
    if (claims) why = `the decision key Secret ${state.target.namespace}/${state.target.config.decisions.keySecretName} does not exist, so no seal can be checked`;
  } else if (reading.kind === 'genuine') {
    status = DecisionStatus.Genuine;
    record = reading.record;
  } else if (reading.kind === 'forged') {
    status = DecisionStatus.Forged;
    why = reading.reason;
  } else {
    status = DecisionStatus.None;
  }
  const held = record === null ? null : state.ledger.get(record.reservationId);
  const since = held?.runningSinceMs;
  const recordView =
    record === null
      ? null
      : (({ pod: _pod, issuedAtMs, ...rest }) => ({ ...rest, issuedAt: new Date(issuedAtMs).toISOString(), ageSeconds: Math.max(0, Math.floor((state.nowMs - issuedAtMs) / 1000)) }))(record);
  return {
    pod: key,
    phase: (pod.status?.phase as string | undefined) ?? null,
    nodeName: pod.spec?.nodeName ?? null,
    decision: { status, why, record: recordView },
    reservation:
      held === null || held.podKey !== key
        ? null
        : { id: held.id, state: held.state, runningSince: since === null || since === undefined ? null : new Date(since).toISOString(), memoryMiB: held.memoryMiB, threadPercent: held.threadPercent, threadCeilingPercent: held.threadCeilingPercent ?? held.threadPercent },
    now: placementNow(pod, namespace, record?.reservationId ?? null, record?.node ?? null, state),
  };
}

/** The text kubectl users read. */
export function renderExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`Pod:        ${e.pod}${e.phase === null ? '' : ` (${e.phase}${e.nodeName === null ? '' : ` on ${e.nodeName}`})`}`);
  const r = e.decision.record;
  switch (e.decision.status) {
    case DecisionStatus.Genuine:
      lines.push("Decision:   genuine: the webhook's seal verifies for this pod");
      break;
    case DecisionStatus.Forged:
      lines.push(`Decision:   NOT genuine, it holds no GPU capacity: ${e.decision.why ?? ''}`);
      break;
    case DecisionStatus.Unverifiable:
      lines.push(`Decision:   cannot be verified: ${e.decision.why ?? ''}`);
      break;
    default:
      lines.push('Decision:   none recorded (the webhook has not placed this pod)');
  }
  if (r !== null) {
    lines.push(`  Slot:     ${r.node} GPU ${r.gpuIndex} (${r.gpuUuid})`);
    lines.push(`  Limits:   ${formatMiB(r.memoryLimitMiB)} pinned memory, ${r.threadCeilingPercent === undefined ? `${r.threadPercent}% active threads` : `${r.threadPercent}% compute reserved, ${r.threadCeilingPercent}% active threads (its limit)`}, priority ${r.priority}, containers ${r.containers.join(',')}`);
    lines.push(`  Issued:   ${r.issuedAt} (${formatAge(r.ageSeconds)} ago) on metrics ${r.metricsAgeSeconds}s old`);
    lines.push(`  Reason:   ${r.reason === '' ? '<none>' : r.reason}`);
    lines.push(
      e.reservation === null
        ? `  Ledger:   reservation ${r.reservationId} is not held (the pod ended, or the ledger dropped it)`
        : `  Ledger:   reservation ${e.reservation.id} held, ${e.reservation.state}${e.reservation.runningSince === null ? ', its GPU containers not running' : `, running since ${e.reservation.runningSince}`}`,
    );
  }
  const scope = r === null ? '' : ' (as if created now; its own reservation left out)';
  lines.push(`Now${scope}: ${e.now.summary}`);
  let text = `${lines.join('\n')}\n`;
  if (e.now.gpus.length > 0) {
    text += `\n${formatTable(
      ['NODE', 'GPU', 'VERDICT', 'DETAIL'],
      e.now.gpus.map((g) => [g.node, String(g.index), g.rule, g.detail]),
    )}`;
  }
  return text;
}

export interface ExplainOptions extends ClusterCommandFlags {
  namespace?: string;
  output?: string;
}

/** Split "ns/name" or take the namespace from -n, else the kubeconfig context's, else default. */
function podLocation(argument: string, namespace: string | undefined, contextNamespace: string | undefined): { namespace: string; name: string } {
  const slash = argument.indexOf('/');
  if (slash >= 0) {
    const ns = argument.slice(0, slash);
    const name = argument.slice(slash + 1);
    if (ns === '' || name === '' || name.includes('/')) throw new CliError(`"${argument}" is not a pod: give POD, or NAMESPACE/POD`);
    if (namespace !== undefined && namespace !== ns) throw new CliError(`"${argument}" names namespace ${ns} but -n says ${namespace}; give one`);
    return { namespace: ns, name };
  }
  return { namespace: namespace ?? (contextNamespace || 'default'), name: argument };
}

export async function runExplain(podArgument: string, opts: ExplainOptions, deps: ClusterCommandDeps = {}): Promise<CommandRun> {
  const state = await clusterStateFor(opts, deps);
  const { apis, kubeConfig } = state.target;
  const where = podLocation(podArgument, opts.namespace, kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace);
  let pod: V1Pod;
  try {
    pod = await apis.core.readNamespacedPod({ name: where.name, namespace: where.namespace }, apis.callOptions());
  } catch (err) {
    const failure = classifyApiError(err);
    if (failure.kind === ApiFailureKind.NotFound) throw new CliError(`pod ${where.namespace}/${where.name} not found; list them with \`kubectl -n ${where.namespace} get pods\``, ExitCode.Input);
    throw asInputError(describeApiFailure(`reading pod ${where.namespace}/${where.name}`, failure, apis.server));
  }
  const explanation = explainPod(JSON.parse(JSON.stringify(pod)) as Pod, state);
  const stderr = state.problems.map((p) => `warning: ${p}`);
  if (opts.output === OutputFormat.Json || opts.output === OutputFormat.Yaml) return { stdout: formatDocument(explanation, opts.output), stderr, exitCode: 0 };
  return { stdout: renderExplanation(explanation), stderr, exitCode: 0 };
}

export function registerExplainCommand(program: Command): void {
  const command = program
    .command('explain')
    .description("a pod's recorded decision (slot, limits, metric age, reason), whether the webhook really issued it, and what placement would do with it now: the GPU it would choose, or the rule that excludes each GPU")
    .argument('<pod>', 'POD or NAMESPACE/POD')
    .option('-n, --namespace <namespace>', "the pod's namespace (default: the kubeconfig context's, else default)")
    .addOption(textOutputOption({ wide: false }));
  addClusterFlags(command).addHelpText('after', `\n${EXIT_CODES_HELP}`);
  command.action(async (podArgument: string, opts: ExplainOptions) => {
    const run = await runExplain(podArgument, opts);
    for (const line of run.stderr) process.stderr.write(`${line}\n`);
    process.stdout.write(run.stdout);
    process.exitCode = run.exitCode;
  });
}
