/**
 * values.yaml, values.schema.json and the generated values table agree with each other, with
 * the webhook's configuration schema, and with the test value sets; bad values fail with a
 * message that names the key.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { configSchema, defaultConfig, parseConfigText } from '../config/schema.js';
import { loadDefaultValues, loadValueSets } from './chartValueSets.js';
import { chartDir, findObject, lintRun, renderChart, repoRoot, templateRun } from './renderChart.js';

const execFileP = promisify(execFile);
const valuesTableScript = path.join(repoRoot, 'scripts/values-table.mjs');
const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as JsonSchema;
const defaults = loadDefaultValues();

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  description?: string;
  [k: string]: unknown;
}

/** Paths (dotted) whose keys are free by nature: label and annotation maps, resource quantities. */
const MAP_PATHS = new Set([
  'serviceAccount.annotations',
  'podAnnotations',
  'podLabels',
  'nodeSelector',
  'resources.requests',
  'resources.limits',
  'webhook.annotations',
  'mpsDaemon.nodeSelector',
  'mpsDaemon.resources.requests',
  'mpsDaemon.resources.limits',
  'serviceMonitor.labels',
  'prometheusRule.labels',
  'grafanaDashboard.labels',
  'grafanaDashboard.annotations',
]);
/** Kubernetes API objects passed through verbatim; the rendered object is validated against the Kubernetes schema instead. */
const OPAQUE_PATHS = new Set(['affinity.nodeAffinity', 'affinity.podAffinity', 'affinity.podAntiAffinity', 'networkPolicy.ingressFrom[]']);
/** Values that are Kubernetes objects (or parts of one): the schema lists their fields, the defaults set only some. */
const KUBERNETES_OBJECT_PATHS = new Set([
  'podSecurityContext',
  'podSecurityContext.seccompProfile',
  'securityContext',
  'securityContext.capabilities',
  'securityContext.seccompProfile',
  'affinity',
  'resources',
  'mpsDaemon.resources',
  'certificates.certManager.issuerRef',
]);

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}
async function runValuesTable(args: string[]): Promise<RunResult> {
  try {
    const r = await execFileP(process.execPath, [valuesTableScript, ...args], { cwd: repoRoot });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface DocumentedKey {
  path: string[];
  description: string;
  default: unknown;
}

function getAt(obj: unknown, keyPath: string[]): { present: boolean; value: unknown } {
  let cur: unknown = obj;
  for (const k of keyPath) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, k)) return { present: false, value: undefined };
    cur = (cur as Record<string, unknown>)[k];
  }
  return { present: true, value: cur };
}

describe('values.schema.json', () => {
  test('every object level forbids unknown keys, except free maps and Kubernetes pass-through objects', () => {
    const loose: string[] = [];
    const walk = (node: JsonSchema, at: string): void => {
      for (const alt of node.anyOf ?? []) walk(alt, at);
      if (node.type === 'array' && node.items) walk(node.items, `${at}[]`);
      if (node.type !== 'object') return;
      if (OPAQUE_PATHS.has(at)) return;
      if (node.additionalProperties !== false) {
        const isMap = MAP_PATHS.has(at) && typeof node.additionalProperties === 'object';
        if (!isMap) loose.push(at || '(root)');
      }
      for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, at ? `${at}.${k}` : k);
      if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${at}.*`);
    };
    walk(schema, '');
    expect(loose).toEqual([]);
  });

  test('it describes exactly the keys of values.yaml', () => {
    const missingInSchema: string[] = [];
    const walkValues = (value: unknown, node: JsonSchema | undefined, at: string): void => {
      if (node === undefined) {
        missingInSchema.push(at);
        return;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value) || MAP_PATHS.has(at) || OPAQUE_PATHS.has(at)) return;
      for (const [k, v] of Object.entries(value)) walkValues(v, node.properties?.[k], at ? `${at}.${k}` : k);
    };
    walkValues(defaults, schema, '');
    expect(missingInSchema).toEqual([]);

    const notInValues: string[] = [];
    const walkSchema = (node: JsonSchema, value: unknown, at: string): void => {
      if (MAP_PATHS.has(at) || OPAQUE_PATHS.has(at)) return;
      for (const [k, child] of Object.entries(node.properties ?? {})) {
        const p = at ? `${at}.${k}` : k;
        const here = getAt(value, [k]);
        // Kubernetes objects offer more fields than the defaults set.
        if (!here.present && !KUBERNETES_OBJECT_PATHS.has(at)) notInValues.push(p);
        if (here.present) walkSchema(child, here.value, p);
      }
    };
    walkSchema(schema, defaults, '');
    expect(notInValues).toEqual([]);
  });
});

describe('bad values fail the install with a message naming the key', () => {
  test.each([
    ['a wrong type', { replicaCount: 'two' }, ["at '/replicaCount'", 'got string, want integer']],
    ['an unknown top-level key', { replicas: 3 }, ["additional properties 'replicas' not allowed"]],
    ['a misspelt nested key', { config: { placement: { polcy: 'spread' } } }, ["at '/config/placement'", "additional properties 'polcy' not allowed"]],
    ['a value outside its enum', { webhook: { failurePolicy: 'Sometimes' } }, ["at '/webhook/failurePolicy'", "'Fail'", "'Ignore'"]],
    ['a number out of range', { webhook: { timeoutSeconds: 60 } }, ["at '/webhook/timeoutSeconds'", '30']],
    ['a relative host path', { config: { injection: { hostPipeDirectory: 'run/mps' } } }, ["at '/config/injection/hostPipeDirectory'"]],
    ['a metrics source the chart cannot serve', { config: { metrics: { source: 'file' } } }, ["at '/config/metrics/source'"]],
  ])('%s', async (_what, values, expected) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'chart-bad-values-'));
    const file = path.join(dir, 'values.json');
    await writeFile(file, JSON.stringify(values));
    const t = await templateRun({ valuesFiles: [file] });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain("values don't meet the specifications of the schema");
    for (const text of expected) expect(t.stderr).toContain(text);
    const l = await lintRun({ valuesFiles: [file] });
    expect(l.code).not.toBe(0);
    expect(`${l.stdout}${l.stderr}`).toContain(expected[0]);
  });

  test.each([
    ['secret mode without a Secret name', { 'certificates.mode': 'secret', 'certificates.caBundle': 'TUlJ' }, 'certificates.secretName is empty'],
    ['secret mode without a caBundle', { 'certificates.mode': 'secret', 'certificates.secretName': 'tls' }, 'certificates.caBundle is empty'],
    ['a caBundle outside secret mode', { 'certificates.caBundle': 'TUlJ' }, 'the caBundle is only used with mode "secret"'],
    ['an admission deadline beyond the API server timeout', { 'config.server.admissionTimeoutMs': 5000 }, 'config.server.admissionTimeoutMs (5000) must be below webhook.timeoutSeconds (5 s)'],
    ['thread bounds the wrong way round', { 'config.placement.minThreadPercent': 60, 'config.placement.maxThreadPercent': 50 }, 'minThreadPercent (60) is above config.placement.maxThreadPercent (50)'],
    ['the exporters source without URLs', { 'config.metrics.source': 'exporters' }, 'config.metrics.exporterUrls is empty'],
    ['the prometheus source without a URL', { 'config.metrics.source': 'prometheus' }, 'config.metrics.prometheusUrl is empty'],
    ['an issuerRef without a name', { 'certificates.mode': 'cert-manager', 'certificates.certManager.issuerRef': { kind: 'ClusterIssuer' } }, "missing property 'name'"],
    ['an unverifiable ServiceMonitor', { 'serviceMonitor.enabled': true, 'serviceMonitor.insecureSkipVerify': false }, 'needs a CA Prometheus can read'],
    ['an external ServiceAccount without a name', { 'serviceAccount.create': false }, 'serviceAccount.name is required when serviceAccount.create is false'],
  ])('%s', async (_what, values, expected) => {
    const t = await templateRun({ values });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain(expected);
  });

  test('a PEM pasted where base64 belongs is refused with the fix', async () => {
    const t = await templateRun({ values: { 'certificates.mode': 'secret', 'certificates.secretName': 'tls', 'certificates.caBundle': 'not base64 at all' } });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain("at '/certificates/caBundle'");
    const notPem = await templateRun({ values: { 'certificates.mode': 'secret', 'certificates.secretName': 'tls', 'certificates.caBundle': Buffer.from('hello').toString('base64') } });
    expect(notPem.code).not.toBe(0);
    expect(notPem.stderr).toContain('certificates.caBundle is not a base64 PEM certificate');
  });
});

describe('values.yaml documentation', () => {
  test('the values table in the docs is generated from values.yaml and up to date', async () => {
    const r = await runValuesTable(['--check']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const table = (await runValuesTable([])).stdout;
    for (const key of ['`replicaCount`', '`certificates.mode`', '`config.placement.policy`', '`mpsDaemon.enabled`']) expect(table).toContain(key);
    expect(await readFile(path.join(repoRoot, 'README.md'), 'utf8')).toContain(table.trim());
  });

  test('a hand edit of the table, or a key without a comment, is caught', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'values-table-'));
    const doc = path.join(dir, 'README.md');
    const original = await readFile(path.join(repoRoot, 'README.md'), 'utf8');
    await writeFile(doc, original.replace('| `replicaCount` | int | `2` |', '| `replicaCount` | int | `3` |'));
    const stale = await runValuesTable(['--check', '--doc', doc]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('the values table is out of date');
    expect(stale.stderr).toContain('node scripts/values-table.mjs --write');

    const values = path.join(dir, 'values.yaml');
    await writeFile(values, `${await readFile(path.join(chartDir, 'values.yaml'), 'utf8')}\nsneaky:\n  knob: 1\n`);
    const undocumented = await runValuesTable(['--values', values]);
    expect(undocumented.code).toBe(1);
    expect(undocumented.stderr).toContain('these keys have no "# --" comment: sneaky.knob');
  });

  test('every documented option is changed by at least one test value set', async () => {
    const r = await runValuesTable(['--keys']);
    expect(r.code).toBe(0);
    const keys = JSON.parse(r.stdout) as DocumentedKey[];
    expect(keys.length).toBeGreaterThan(80);
    const sets = loadValueSets();
    const unchanged = keys
      .filter((k) => !sets.some((s) => {
        const v = getAt(s.values, k.path);
        return v.present && !isDeepStrictEqual(v.value, k.default);
      }))
      .map((k) => k.path.join('.'));
    expect(unchanged).toEqual([]);
  });
});

/** Leaf paths of a zod object schema (defaults and optionals unwrapped). */
function zodLeaves(schemaNode: z.ZodTypeAny, prefix: string[] = []): string[] {
  let node: z.ZodTypeAny = schemaNode;
  for (;;) {
    if (node instanceof z.ZodDefault) node = node._def.innerType as z.ZodTypeAny;
    else if (node instanceof z.ZodOptional) node = node.unwrap() as z.ZodTypeAny;
    else if (node instanceof z.ZodEffects) node = node.innerType() as z.ZodTypeAny;
    else break;
  }
  if (node instanceof z.ZodObject) {
    return Object.entries(node.shape as Record<string, z.ZodTypeAny>).flatMap(([k, child]) => zodLeaves(child, [...prefix, k]));
  }
  return [prefix.join('.')];
}

function valueLeaves(value: unknown, prefix: string[] = []): string[] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => valueLeaves(v, [...prefix, k]));
  }
  return [prefix.join('.')];
}

/** Webhook settings the chart decides itself, and where each comes from. */
const CHART_OWNED = {
  'server.tlsCertFile': 'the TLS volume mount',
  'server.tlsKeyFile': 'the TLS volume mount',
  'server.clientCAFile': 'mutualTls: the client CA volume mount',
  'metrics.file': 'not offered: the file source is for local runs',
  'metrics.fileSampleTime': 'not offered: the file source is for local runs',
  'cluster.enabled': 'always on in a cluster',
  'cluster.namespace': 'the release namespace',
  'certificates.mode': 'certificates.mode',
  'certificates.secretName': 'certificates.secretName',
  'certificates.serviceName': 'the Service name',
  'certificates.mutatingWebhookConfigurationName': 'the MutatingWebhookConfiguration name',
  'certificates.caValidityDays': 'certificates.selfManaged.caValidityDays',
  'certificates.leafValidityDays': 'certificates.selfManaged.leafValidityDays',
  'certificates.renewAtFraction': 'certificates.selfManaged.renewAtFraction',
} as const;

describe('the config section follows the webhook configuration schema', () => {
  test('every webhook setting is either a chart value under config or decided by the chart', () => {
    const webhookFields = zodLeaves(configSchema).sort();
    const chartValues = valueLeaves(defaults.config).sort();
    const covered = [...chartValues, ...Object.keys(CHART_OWNED)].sort();
    expect({ notInChart: webhookFields.filter((f) => !covered.includes(f)) }).toEqual({ notInChart: [] });
    expect({ unknownToWebhook: covered.filter((f) => !webhookFields.includes(f)) }).toEqual({ unknownToWebhook: [] });
    expect(chartValues.filter((f) => f in CHART_OWNED)).toEqual([]);
  });

  test("the chart's defaults are the webhook's defaults, apart from what a cluster install decides", async () => {
    const objects = await renderChart();
    const cm = findObject(objects, 'ConfigMap', 'mps-injector') as unknown as { data: Record<string, string> };
    const rendered = parseConfigText(cm.data['config.yaml'] as string, 'rendered ConfigMap') as unknown as Record<string, Record<string, unknown>>;
    const webhookDefaults = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
    const differences: Record<string, [unknown, unknown]> = {};
    for (const leaf of zodLeaves(configSchema)) {
      const p = leaf.split('.');
      const a = getAt(rendered, p).value;
      const b = getAt(webhookDefaults, p).value;
      if (!isDeepStrictEqual(a, b)) differences[leaf] = [a, b];
    }
    expect(differences).toEqual({
      'cluster.enabled': [true, false],
      'cluster.namespace': ['mps-injector', ''],
      // The chart's daemon is off by default, so is the check; when on, it watches the release's own daemon pods.
      'cluster.mpsDaemon.required': [false, true],
      'cluster.mpsDaemon.namespace': ['mps-injector', ''],
      'cluster.mpsDaemon.labelSelector': [
        'app.kubernetes.io/name=mps-injector,app.kubernetes.io/instance=mps-injector,app.kubernetes.io/component=mps-daemon',
        'app.kubernetes.io/name=mps-injector,app.kubernetes.io/component=mps-daemon',
      ],
      'certificates.mode': ['self-managed', 'files'],
      'certificates.renewAtFraction': [0.6667, 2 / 3],
    });
  });
});
