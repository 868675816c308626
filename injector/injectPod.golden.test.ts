/**
 * Golden tests: every input in testdata/ (a Pod, or an AdmissionReview whose request.object is the pod)
 * runs through readSlotRequest -> enforceMpsAccess -> injectPod -> buildPatch with one fixed slot, and must match
 * testdata/<case>.injected.yaml byte for byte. REFRESH_GOLDEN=1 rewrites the goldens.
 *
 * An input is `<case>.yaml` (optionally a second YAML document `config: {...}` overriding the base
 * configuration for that case) or `<case>.json.txt` (JSON after a `# SOURCE:` first line).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsonPatch from 'fast-json-patch';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { podIdentityOf, sealDecision } from '../domain/decisionRecord.js';
import { Pod as PodModel } from 'kubernetes-models/v1';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { parseAllDocuments, stringify } from 'yaml';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { SlotChoice, SlotRequest } from '../domain/slot.js';
import { withThreadCeiling } from '../placement/threadCeiling.js';
import { buildPatch } from './buildPatch.js';
import { injectPod } from './injectPod.js';
import { enforceMpsAccess } from './mpsAccess.js';
import { podSpecProblems } from './podSpecProblems.js';
import { InvalidPodError, readSlotRequest } from './readSlotRequest.js';
import type { PodIntent } from './readSlotRequest.js';

const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const REFRESH = process.env['REFRESH_GOLDEN'] === '1';
const GOLDEN_SUFFIX = '.injected.yaml';
const INPUT_SUFFIXES = ['.json.txt', '.yaml'] as const;
const POD_REQUEST_UID = '5f0c2b1e-9d3a-4c1b-8e52-7a3f0d9c4e21';
const RESERVATION_ID = 'rsv-gpu-node-1-3-0001';
/** When every golden decision was issued (sealed under the test key ring). */
const ISSUED_AT_MS = Date.UTC(2026, 0, 5, 9, 30);

/** Base configuration of every case, before the case's own overrides. */
const BASE_CONFIG = {
  requests: { defaultGpuMemory: '4Gi', highPriorityThreshold: 1000 },
  injection: { tolerations: [{ key: 'nvidia.com/mps', operator: 'Exists', effect: 'NoSchedule' }] },
};

/** The one slot every golden case is placed on: gpu-node-1, GPU 3 of its 8 H100s. */
function goldenChoice(request: SlotRequest): SlotChoice {
  return {
    ok: true,
    node: 'gpu-node-1',
    gpuUuid: 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d',
    gpuIndex: 3,
    gpuModel: 'NVIDIA H100 80GB HBM3',
    threadPercent: request.threadPercent ?? 25,
    memoryLimitMiB: request.memoryMiB,
    priority: request.priority,
    metricsAgeSeconds: 12,
    considered: 8,
    reason: 'binpack: gpu-node-1 GPU 3 (NVIDIA H100 80GB HBM3) is the fullest of 8 GPUs that still fit',
  };
}

interface GoldenCase {
  name: string;
  inputFile: string;
  pod: Pod;
  namespace: string;
  requestUid: string;
  config: Config;
}

function caseNameOf(file: string): string | null {
  if (file.endsWith(GOLDEN_SUFFIX)) return null;
  const suffix = INPUT_SUFFIXES.find((s) => file.endsWith(s));
  return suffix === undefined ? null : file.slice(0, -suffix.length);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mergeConfig(base: unknown, override: unknown): unknown {
  if (!isRecord(base) || !isRecord(override)) return override === undefined ? base : override;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) merged[key] = mergeConfig(base[key], value);
  return merged;
}

function loadCase(file: string): GoldenCase {
  const name = caseNameOf(file);
  if (name === null) throw new Error(`${file} is not a golden input`);
  const text = readFileSync(join(TESTDATA, file), 'utf8');
  let document: unknown;
  let override: unknown;
  if (file.endsWith('.json.txt')) {
    const body = text.startsWith('# SOURCE:') ? text.slice(text.indexOf('\n') + 1) : text;
    document = JSON.parse(body);
  } else {
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) throw new Error(`${file}: no YAML document`);
    for (const d of docs) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    document = docs[0]?.toJS();
    const extra: unknown = docs[1]?.toJS();
    override = isRecord(extra) ? extra['config'] : undefined;
  }
  if (!isRecord(document)) throw new Error(`${file}: expected a Pod or an AdmissionReview`);
  const config = buildConfig(mergeConfig(BASE_CONFIG, override), `${file} config`);
  if (document['kind'] === 'AdmissionReview') {
    const request = document['request'] as { object: Pod; namespace: string; uid: string };
    return { name, inputFile: file, pod: request.object, namespace: request.namespace, requestUid: request.uid, config };
  }
  const pod = document as Pod;
  return { name, inputFile: file, pod, namespace: pod.metadata?.namespace ?? 'inference', requestUid: POD_REQUEST_UID, config };
}

/** What readSlotRequest said: an intent, or the InvalidPodError message the user would see. */
type GoldenIntent = PodIntent | { kind: 'invalid'; message: string };

interface Outcome {
  intent: GoldenIntent;
  mutated: Pod;
  warnings: string[];
}

function readIntent(c: GoldenCase, pod: Pod): GoldenIntent {
  try {
    return readSlotRequest(pod, { namespace: c.namespace, requestUid: c.requestUid, config: c.config, keys: TEST_KEY_RING });
  } catch (err) {
    if (err instanceof InvalidPodError) return { kind: 'invalid', message: err.message };
    throw err;
  }
}

function run(c: GoldenCase, pod: Pod): Outcome {
  const intent = readIntent(c, pod);
  if (intent.kind === 'invalid') return { intent, mutated: pod, warnings: [] };
  // As admitPod does: MPS access around the injector is refused (an invalid pod) or stripped first.
  const selected = intent.kind === 'skip' ? [] : intent.kind === 'reinject' ? intent.recorded.containers : intent.containers;
  const access = enforceMpsAccess(pod, selected, c.config.injection, { injecting: intent.kind !== 'skip' });
  if (!access.ok) return { intent: { kind: 'invalid', message: access.message }, mutated: pod, warnings: [] };
  switch (intent.kind) {
    case 'skip':
      return { intent, mutated: pod, warnings: [] };
    case 'reinject': {
      const { choice, reservationId, containers } = intent.recorded;
      const r = injectPod(access.pod, choice, reservationId, containers, c.config.injection);
      return { intent, mutated: r.pod, warnings: [...access.warnings, ...r.warnings] };
    }
    case 'place': {
      // As reserveSlot does: the MPS limit above the reserved share is added to the choice.
      const choice = withThreadCeiling(goldenChoice(intent.request), intent.request, c.config.placement) as SlotChoice;
      const seal = sealDecision(
        {
          pod: podIdentityOf(pod, c.namespace),
          reservationId: RESERVATION_ID,
          node: choice.node,
          gpuUuid: choice.gpuUuid,
          gpuIndex: choice.gpuIndex,
          threadPercent: choice.threadPercent,
          threadCeilingPercent: choice.threadCeilingPercent,
          memoryLimitMiB: choice.memoryLimitMiB,
          priority: choice.priority,
          containers: intent.containers,
          issuedAtMs: ISSUED_AT_MS,
        },
        TEST_KEY_RING,
      );
      const r = injectPod(access.pod, choice, RESERVATION_ID, intent.containers, c.config.injection, seal);
      return { intent, mutated: r.pod, warnings: [...access.warnings, ...r.warnings] };
    }
  }
}

function describeIntent(intent: GoldenIntent): string[] {
  switch (intent.kind) {
    case 'invalid':
      return [`intent: invalid, rejected with: ${intent.message}`];
    case 'skip':
      return [`intent: skip (${intent.reason})`];
    case 'reinject':
      return [`intent: reinject (reservation ${intent.recorded.reservationId}, containers ${intent.recorded.containers.join(', ')})`];
    case 'place':
      return [
        `intent: place (containers ${intent.containers.join(', ')})`,
        `request: ${JSON.stringify(intent.request)}`,
        ...(intent.forged !== null ? [`forged decision replaced: ${intent.forged}`] : []),
      ];
  }
}

function renderGolden(c: GoldenCase, outcome: Outcome, patch: jsonPatch.Operation[]): string {
  const lines = [
    `Golden output of injector/injectPod.golden.test.ts for testdata/${c.inputFile}.`,
    'Regenerate with: REFRESH_GOLDEN=1 npm run test:unit -- injector',
    ...describeIntent(outcome.intent),
    outcome.warnings.length === 0 ? 'warnings: none' : 'warnings:',
    ...outcome.warnings.map((w) => `  - ${w}`),
    `patch: ${patch.length} operation${patch.length === 1 ? '' : 's'}`,
    ...patch.map((op) => `  ${op.op} ${op.path}`),
  ];
  const header = lines.map((l) => `# ${l}`.trimEnd()).join('\n');
  return `${header}\n${stringify(outcome.mutated, { lineWidth: 0 })}`;
}

const files = readdirSync(TESTDATA).sort();
const cases = files.filter((f) => caseNameOf(f) !== null);

test('golden inputs cover at least 15 cases', () => {
  expect(cases.length).toBeGreaterThanOrEqual(15);
});

test('every golden file has an input', () => {
  const inputs = new Set(cases.map((f) => caseNameOf(f)));
  const orphans = files.filter((f) => f.endsWith(GOLDEN_SUFFIX) && !inputs.has(f.slice(0, -GOLDEN_SUFFIX.length)));
  expect(orphans).toEqual([]);
});

describe.each(cases)('golden %s', (file) => {
  const c = loadCase(file);
  const before = structuredClone(c.pod);
  const outcome = run(c, c.pod);
  const patch = buildPatch(c.pod, outcome.mutated);

  test('matches its golden file', () => {
    const goldenPath = join(TESTDATA, `${c.name}${GOLDEN_SUFFIX}`);
    const actual = renderGolden(c, outcome, patch);
    if (REFRESH) writeFileSync(goldenPath, actual);
    if (!existsSync(goldenPath)) {
      throw new Error(`missing golden file testdata/${c.name}${GOLDEN_SUFFIX}; create it with REFRESH_GOLDEN=1 npm run test:unit -- injector and review it`);
    }
    expect(actual).toBe(readFileSync(goldenPath, 'utf8'));
  });

  test('leaves its input untouched', () => {
    expect(c.pod).toEqual(before);
  });

  test('the patch applied to the input gives the injected pod', () => {
    const { newDocument } = jsonPatch.applyPatch(structuredClone(c.pod), patch, true, false);
    expect(newDocument).toEqual(outcome.mutated);
  });

  test('the injected pod is a valid pod', () => {
    expect(podSpecProblems(outcome.mutated)).toEqual([]);
    expect(() => new PodModel(structuredClone(outcome.mutated) as ConstructorParameters<typeof PodModel>[0]).validate()).not.toThrow();
  });

  test('injecting the injected pod again changes nothing', () => {
    const again = run(c, outcome.mutated);
    if (outcome.intent.kind === 'skip' || outcome.intent.kind === 'invalid') {
      expect(again.intent).toEqual(outcome.intent);
      expect(patch).toEqual([]);
    } else {
      expect(again.intent.kind).toBe('reinject');
      expect(again.mutated).toEqual(outcome.mutated);
      expect(buildPatch(outcome.mutated, again.mutated)).toEqual([]);
    }
  });

  if (outcome.intent.kind === 'place') {
    const request = outcome.intent.request;
    test('the recorded decision reads back as the one applied', () => {
      const again = readIntent(c, outcome.mutated);
      if (again.kind !== 'reinject') throw new Error(`expected reinject, got ${again.kind}`);
      expect(again.recorded).toEqual({
        reservationId: RESERVATION_ID,
        issuedAtMs: ISSUED_AT_MS,
        containers: outcome.intent.kind === 'place' ? outcome.intent.containers : [],
        choice: { ...withThreadCeiling(goldenChoice(request), request, c.config.placement), gpuModel: '', considered: 0 },
      });
    });
  }
});
