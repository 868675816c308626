/**
 * Runs the built webhook the way the rendered Deployment describes it, with this machine
 * standing in for the kubelet: the container's args, its ConfigMap and Secret volumes laid
 * out under a private root directory at their mount paths, and `node dist/cli/main.js`
 * in place of the image's entrypoint.
 *
 * Only what a machine without a cluster cannot have is changed in the mounted configuration:
 * no API server (cluster.enabled false), DCGM metrics from a file, and absolute paths moved
 * under the root.
 */
import { access, copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { ConfigMap, Container, Volume } from 'kubernetes-types/core/v1.js';
import { parse as parseYaml, stringify } from 'yaml';
import type { KubeObject } from '../../charts/renderChart.js';
import { findObject, repoRoot } from '../../charts/renderChart.js';

import type { WebhookProcess } from '../support/webhookProcess.js';
import { cliPath, spawnWebhook } from '../support/webhookProcess.js';

export { cliPath };

export interface RenderedWebhook extends WebhookProcess {
  root: string;
  /** The configuration file as the process reads it. */
  config: Record<string, Record<string, unknown>>;
}

export interface RunOptions {
  /** Data of the Secrets the pod mounts, by Secret name. */
  secrets: Record<string, Record<string, string>>;
  /** A dcgm-exporter dump the webhook reads instead of scraping exporters. */
  metricsFile: string;
}

/** Fail early, with the fix, when the webhook has not been built. */
export async function requireBuiltCli(): Promise<void> {
  try {
    await access(cliPath);
  } catch {
    throw new Error(`${path.relative(repoRoot, cliPath)} is missing: run "npm run build" before the registration e2e test`);
  }
}

function webhookContainer(d: Deployment): Container {
  const c = d.spec?.template.spec?.containers.find((x) => x.name === 'webhook');
  if (!c) throw new Error(`Deployment ${d.metadata?.name} has no container named "webhook"`);
  return c;
}

const under = (root: string, p: string): string => path.join(root, p);

/** Lay out one volume mount under the root, as the kubelet would inside the container. */
async function mountVolume(root: string, objects: KubeObject[], volume: Volume, mountPath: string, subPath: string | undefined, secrets: RunOptions['secrets']): Promise<void> {
  let files: Record<string, string>;
  if (volume.configMap) {
    files = (findObject(objects, 'ConfigMap', volume.configMap.name) as unknown as ConfigMap).data ?? {};
  } else if (volume.secret) {
    const data = secrets[volume.secret.secretName ?? ''];
    if (!data) throw new Error(`the pod mounts Secret "${volume.secret.secretName}", which the test did not provide`);
    files = data;
  } else if (volume.emptyDir) {
    await mkdir(under(root, mountPath), { recursive: true });
    return;
  } else {
    throw new Error(`volume ${volume.name}: only configMap, secret and emptyDir volumes are laid out by this harness`);
  }
  const items = (volume.configMap?.items ?? volume.secret?.items)?.map((i) => ({ key: i.key, path: i.path })) ?? Object.keys(files).map((k) => ({ key: k, path: k }));
  if (subPath !== undefined) {
    const item = items.find((i) => i.path === subPath);
    if (!item || files[item.key] === undefined) throw new Error(`volume ${volume.name} has no ${subPath} to mount at ${mountPath}`);
    await mkdir(path.dirname(under(root, mountPath)), { recursive: true });
    await writeFile(under(root, mountPath), files[item.key] as string);
    return;
  }
  await mkdir(under(root, mountPath), { recursive: true });
  for (const item of items) {
    const content = files[item.key];
    if (content === undefined) throw new Error(`volume ${volume.name} has no key ${item.key}`);
    await writeFile(path.join(under(root, mountPath), item.path), content);
  }
}

/** Start the webhook from the rendered objects; resolves once it listens. */
export async function runRenderedWebhook(objects: KubeObject[], opts: RunOptions): Promise<RenderedWebhook> {
  await requireBuiltCli();
  const d = findObject(objects, 'Deployment') as unknown as Deployment;
  const container = webhookContainer(d);
  const volumes = d.spec?.template.spec?.volumes ?? [];
  const root = await mkdtemp(path.join(tmpdir(), 'mps-injector-pod-'));

  for (const m of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === m.name);
    if (!volume) throw new Error(`volumeMount ${m.name} names no volume of the pod`);
    await mountVolume(root, objects, volume, m.mountPath, m.subPath, opts.secrets);
  }

  const args = container.args ?? [];
  const configAt = args.indexOf('--config');
  const configPath = configAt >= 0 ? args[configAt + 1] : undefined;
  if (!configPath) throw new Error(`the container args ${JSON.stringify(args)} name no --config file`);
  const configFile = under(root, configPath);
  const config = parseYaml(await readFile(configFile, 'utf8')) as Record<string, Record<string, unknown>>;

  // What a machine without a cluster cannot have.
  const metricsPath = '/var/lib/mps-injector-e2e/dcgm.prom';
  await mkdir(path.dirname(under(root, metricsPath)), { recursive: true });
  await copyFile(opts.metricsFile, under(root, metricsPath));
  const local = {
    ...config,
    server: {
      ...config.server,
      host: '127.0.0.1',
      tlsCertFile: under(root, String(config.server?.tlsCertFile)),
      tlsKeyFile: under(root, String(config.server?.tlsKeyFile)),
      // No endpoints to wait for here: the test's SIGTERM stops the process at once.
      drainDelaySeconds: 0,
    },
    metrics: { ...config.metrics, source: 'file', file: under(root, metricsPath) },
    cluster: { ...config.cluster, enabled: false },
  };
  await writeFile(configFile, stringify(local));

  const localArgs = args.map((a) => (a === configPath ? configFile : a));
  const webhook = await spawnWebhook(localArgs, { cwd: root });
  return { ...webhook, root, config: local as Record<string, Record<string, unknown>> };
}
