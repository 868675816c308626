/**
 * Runs the real Helm binary (tools/bin/helm, placed there by scripts/install-helm.sh) on the
 * chart and parses what it renders. Shared by the chart tests and the registration e2e test.
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const chartDir = path.join(repoRoot, 'charts/mps-injector');
export const helmBin = path.join(repoRoot, 'tools/bin/helm');
export const kubectlBin = path.join(repoRoot, 'tools/bin/kubectl');
export const installHelmScript = path.join(repoRoot, 'scripts/install-helm.sh');

/** One rendered Kubernetes object, as plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface HelmRun {
  code: number;
  stdout: string;
  stderr: string;
}

function runFile(file: string, args: string[], timeoutMs = 60_000): Promise<HelmRun> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: repoRoot, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`could not run ${file}: ${err.message}`));
        return;
      }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

let helmReady: Promise<void> | null = null;

/** Make sure tools/bin/helm and tools/bin/kubectl exist, running scripts/install-helm.sh once if not. */
export function ensureHelm(): Promise<void> {
  helmReady ??= (async () => {
    try {
      await Promise.all([access(helmBin, constants.X_OK), access(kubectlBin, constants.X_OK)]);
      return;
    } catch {
      // not installed yet
    }
    const r = await runFile('bash', [installHelmScript], 120_000);
    if (r.code !== 0) throw new Error(`scripts/install-helm.sh failed (exit ${r.code}): ${r.stderr || r.stdout}`);
  })();
  return helmReady;
}

/** Run helm with the given arguments from the repository root. */
export async function runHelm(args: string[]): Promise<HelmRun> {
  await ensureHelm();
  return runFile(helmBin, args);
}

export interface RenderOptions {
  /** Values files, relative to the repository root or absolute. */
  valuesFiles?: string[];
  /** --set-json pairs: path -> any JSON value. */
  values?: Record<string, unknown>;
  releaseName?: string;
  namespace?: string;
  /** The Kubernetes version the chart renders for (Capabilities.KubeVersion); Helm's own default when absent. */
  kubeVersion?: string;
}

function valueArgs(opts: RenderOptions): string[] {
  const args: string[] = [];
  for (const f of opts.valuesFiles ?? []) args.push('--values', path.resolve(repoRoot, f));
  for (const [key, value] of Object.entries(opts.values ?? {})) args.push('--set-json', `${key}=${JSON.stringify(value)}`);
  if (opts.kubeVersion !== undefined) args.push('--kube-version', opts.kubeVersion);
  return args;
}

/** `helm template`: the raw run, for tests that expect a failure. */
export function templateRun(opts: RenderOptions = {}): Promise<HelmRun> {
  return runHelm(['template', opts.releaseName ?? 'mps-injector', chartDir, '--namespace', opts.namespace ?? 'mps-injector', ...valueArgs(opts)]);
}

/** `helm lint --strict` with the same values. */
export function lintRun(opts: RenderOptions = {}): Promise<HelmRun> {
  return runHelm(['lint', '--strict', chartDir, '--namespace', opts.namespace ?? 'mps-injector', ...valueArgs(opts)]);
}

/** Parse a multi-document YAML stream into objects, dropping empty documents. */
export function parseManifests(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    objects.push(value as KubeObject);
  }
  return objects;
}

/** `helm template` the chart and return the rendered objects; throws with Helm's message on failure. */
export async function renderChart(opts: RenderOptions = {}): Promise<KubeObject[]> {
  const r = await templateRun(opts);
  if (r.code !== 0) throw new Error(`helm template failed (exit ${r.code}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}

/** The single object of a kind (and name, when given); throws naming what is there instead. */
export function findObject(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const matches = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (matches.length !== 1) {
    const present = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`expected exactly one ${kind}${name ? `/${name}` : ''}, found ${matches.length} among: ${present}`);
  }
  return matches[0] as KubeObject;
}

export function objectsOfKind(objects: KubeObject[], kind: string): KubeObject[] {
  return objects.filter((o) => o.kind === kind);
}
