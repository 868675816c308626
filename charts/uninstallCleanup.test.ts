/**
 * The uninstall hook Job, run for real: each of its containers' kubectl argument lists is
 * executed by the kubectl binary (tools/bin/kubectl) against a stand-in API server that
 * holds runtime-created objects and authorises every request with the rendered hook Role,
 * the way RBAC would. Shows the commands delete exactly the webhook's runtime objects and
 * that the Role grants what kubectl needs, no more.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { PolicyRule, Role } from 'kubernetes-types/rbac/v1.js';
import { matchesLabelSelector } from '../e2e/registration/matchLabelSelector.js';
import type { KubeObject } from './renderChart.js';
import { ensureHelm, findObject, kubectlBin, renderChart } from './renderChart.js';

const NS = 'gpu-system';

interface StoredObject {
  group: string;
  resource: string;
  kind: string;
  name: string;
  labels: Record<string, string>;
}

/** Objects a running webhook leaves in its namespace, plus neighbours that must survive. */
function clusterObjects(): StoredObject[] {
  const runtime = { 'app.kubernetes.io/managed-by': 'mps-injector' };
  return [
    { group: '', resource: 'configmaps', kind: 'ConfigMap', name: 'mps-injector-gpu-1f2e3d', labels: { ...runtime, 'mps-injector.io/store': 'reservations' } },
    { group: '', resource: 'configmaps', kind: 'ConfigMap', name: 'mps-injector-gpu-4c5b6a', labels: { ...runtime, 'mps-injector.io/store': 'reservations' } },
    { group: 'coordination.k8s.io', resource: 'leases', kind: 'Lease', name: 'mps-injector-replica-7f9c', labels: { ...runtime, 'mps-injector.io/role': 'replica' } },
    { group: '', resource: 'secrets', kind: 'Secret', name: 'mps-injector-tls', labels: runtime },
    // Helm's own objects and somebody else's: untouched.
    { group: '', resource: 'configmaps', kind: 'ConfigMap', name: 'mps-injector', labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
    { group: '', resource: 'configmaps', kind: 'ConfigMap', name: 'kube-root-ca.crt', labels: {} },
    { group: 'coordination.k8s.io', resource: 'leases', kind: 'Lease', name: 'other-controller-leader', labels: {} },
  ];
}

const API_RESOURCES: Record<string, { name: string; kind: string }[]> = {
  v1: [
    { name: 'configmaps', kind: 'ConfigMap' },
    { name: 'secrets', kind: 'Secret' },
  ],
  'coordination.k8s.io/v1': [{ name: 'leases', kind: 'Lease' }],
};

function allowedBy(rules: PolicyRule[], group: string, resource: string, verb: string, name: string | undefined): boolean {
  return rules.some(
    (r) =>
      (r.apiGroups ?? []).includes(group) &&
      (r.resources ?? []).includes(resource) &&
      (r.verbs ?? []).includes(verb) &&
      (r.resourceNames === undefined || r.resourceNames.length === 0 || (name !== undefined && r.resourceNames.includes(name))),
  );
}

interface StandInApi {
  url: string;
  objects: StoredObject[];
  requests: string[];
  forbidden: string[];
  close(): Promise<void>;
}

/** Discovery, list, get and delete for namespaced objects, authorised by the given rules. */
async function startStandInApi(rules: PolicyRule[]): Promise<StandInApi> {
  const objects = clusterObjects();
  const requests: string[] = [];
  const forbidden: string[] = [];
  const send = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const status = (code: number, reason: string, message: string): object => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const p = url.pathname;
    if (p === '/api') return send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (p === '/apis') {
      return send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [{ name: 'coordination.k8s.io', versions: [{ groupVersion: 'coordination.k8s.io/v1', version: 'v1' }], preferredVersion: { groupVersion: 'coordination.k8s.io/v1', version: 'v1' } }],
      });
    }
    const discovery = /^\/(?:api\/(v1)|apis\/(coordination\.k8s\.io\/v1))$/.exec(p);
    if (discovery) {
      const gv = (discovery[1] ?? discovery[2]) as string;
      return send(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: gv,
        resources: (API_RESOURCES[gv] ?? []).map((r) => ({ name: r.name, singularName: '', namespaced: true, kind: r.kind, verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] })),
      });
    }
    const m = /^\/(?:api\/v1|apis\/(coordination\.k8s\.io)\/v1)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (!m) return send(res, 404, status(404, 'NotFound', `the stand-in API does not serve ${p}`));
    const group = m[1] ?? '';
    const [namespace, resource, name] = [m[2] as string, m[3] as string, m[4]];
    const verb = req.method === 'DELETE' ? (name ? 'delete' : 'deletecollection') : name ? 'get' : url.searchParams.get('watch') === 'true' ? 'watch' : 'list';
    requests.push(`${verb} ${group ? `${resource}.${group}` : resource}${name ? `/${name}` : ''}${url.searchParams.get('labelSelector') ? `?labelSelector=${url.searchParams.get('labelSelector')}` : ''}`);
    if (namespace !== NS || !allowedBy(rules, group, resource, verb, name)) {
      forbidden.push(`${verb} ${resource}${name ? `/${name}` : ''}`);
      return send(res, 403, status(403, 'Forbidden', `${resource} is forbidden: cannot ${verb} resource "${resource}" in namespace "${namespace}"`));
    }
    const ofKind = objects.filter((o) => o.group === group && o.resource === resource);
    const toJson = (o: StoredObject): object => ({
      apiVersion: group ? `${group}/v1` : 'v1',
      kind: o.kind,
      metadata: { name: o.name, namespace: NS, labels: o.labels, uid: `uid-${o.name}`, resourceVersion: '1' },
    });
    if (!name) {
      const selector = url.searchParams.get('labelSelector') ?? '';
      const matchLabels = Object.fromEntries(selector.split(',').filter((x) => x !== '').map((kv) => kv.split('=') as [string, string]));
      const items = ofKind.filter((o) => matchesLabelSelector({ matchLabels }, o.labels)).map(toJson);
      const listKind = `${API_RESOURCES[group ? `${group}/v1` : 'v1']?.find((r) => r.name === resource)?.kind ?? 'Object'}List`;
      return send(res, 200, { apiVersion: group ? `${group}/v1` : 'v1', kind: listKind, metadata: { resourceVersion: '1' }, items });
    }
    const found = ofKind.find((o) => o.name === name);
    if (!found) return send(res, 404, status(404, 'NotFound', `${resource} "${name}" not found`));
    if (verb === 'get') return send(res, 200, toJson(found));
    objects.splice(objects.indexOf(found), 1);
    // The API server answers a delete with the object as it was.
    return send(res, 200, toJson(found));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    objects,
    requests,
    forbidden,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function kubeconfigFor(api: StandInApi): Promise<{ file: string; home: string }> {
  const home = await mkdtemp(path.join(tmpdir(), 'cleanup-kubectl-'));
  const file = path.join(home, 'kubeconfig');
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: api.url } }],
      users: [{ name: 'cleanup', user: { token: 'stand-in' } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'cleanup' } }],
      'current-context': 'stand-in',
    }),
  );
  return { file, home };
}

function runKubectl(args: string[], kubeconfig: { file: string; home: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(kubectlBin, [...args, `--kubeconfig=${kubeconfig.file}`], { env: { HOME: kubeconfig.home, PATH: '/usr/bin:/bin' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let objects: KubeObject[];

beforeAll(async () => {
  await ensureHelm();
  objects = await renderChart({ releaseName: 'mps-injector', namespace: NS });
});

const hookJob = (): Job => findObject(objects, 'Job', 'mps-injector-cleanup') as unknown as Job;
const hookRules = (): PolicyRule[] => (findObject(objects, 'Role', 'mps-injector-cleanup') as unknown as Role).rules ?? [];

test("the hook's kubectl commands delete the webhook's runtime objects and nothing else, within the hook Role", async () => {
  const api = await startStandInApi(hookRules());
  try {
    const kubeconfig = await kubeconfigFor(api);
    const containers = hookJob().spec?.template.spec?.containers ?? [];
    expect(containers).toHaveLength(2);
    for (const c of containers) {
      const r = await runKubectl(c.args ?? [], kubeconfig);
      expect({ container: c.name, code: r.code, stderr: r.stderr }).toEqual({ container: c.name, code: 0, stderr: '' });
    }
    expect(api.forbidden).toEqual([]);
    expect(api.objects.map((o) => `${o.kind}/${o.name}`).sort()).toEqual(['ConfigMap/kube-root-ca.crt', 'ConfigMap/mps-injector', 'Lease/other-controller-leader']);
    // No more than needed: every verb the Role grants was used.
    const used = new Set(api.requests.map((r) => `${r.split(' ')[0]} ${(r.split(' ')[1] as string).split(/[/?]/)[0]}`));
    const granted = hookRules().flatMap((rule) => (rule.verbs ?? []).flatMap((v) => (rule.resources ?? []).map((res) => `${v} ${res}${rule.apiGroups?.[0] ? `.${rule.apiGroups[0]}` : ''}`)));
    expect(granted.sort()).toEqual([...used].sort());
  } finally {
    await api.close();
  }
});

test('running it again (nothing left to delete) still succeeds', async () => {
  const api = await startStandInApi(hookRules());
  try {
    const kubeconfig = await kubeconfigFor(api);
    for (const c of hookJob().spec?.template.spec?.containers ?? []) expect((await runKubectl(c.args ?? [], kubeconfig)).code).toBe(0);
    const second = [];
    for (const c of hookJob().spec?.template.spec?.containers ?? []) second.push((await runKubectl(c.args ?? [], kubeconfig)).code);
    expect(second).toEqual([0, 0]);
  } finally {
    await api.close();
  }
});

test('the stand-in enforces the Role: without list, the selector delete is forbidden', async () => {
  const withoutList = hookRules().map((r) => ({ ...r, verbs: (r.verbs ?? []).filter((v) => v !== 'list') }));
  const api = await startStandInApi(withoutList);
  try {
    const kubeconfig = await kubeconfigFor(api);
    const first = hookJob().spec?.template.spec?.containers[0];
    const r = await runKubectl(first?.args ?? [], kubeconfig);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('forbidden');
    expect(api.forbidden.length).toBeGreaterThan(0);
  } finally {
    await api.close();
  }
});
