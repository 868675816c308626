/**
 * Whole-system test of the built command line: exit codes (0 ok, 1 refused, 2 usage, 3 input
 * or I/O), the kubectl plugin bin against the stand-in API server, and shell completion.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { StandInApiServer } from '../testing/standInApiServer.js';
import { createGpuCluster } from '../testing/standInGpuCluster.js';
import { cliPath, repoRoot } from './support/webhookProcess.js';

const exec = promisify(execFile);
const pluginPath = path.join(repoRoot, 'dist/cli/kubectlMps.js');
const example = (f: string): string => path.join(repoRoot, 'examples', f);

async function cli(bin: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('exit codes: 0 placed, 1 refused, 2 usage, 3 input; documented in --help', async () => {
  expect((await cli(cliPath, ['inject', '-f', example('pod.yaml'), '--metrics', example('dcgm-h100x8.prom')])).code).toBe(0);
  const dir = await mkdtemp(path.join(tmpdir(), 'cli-e2e-'));
  const big = (await readFile(example('pod.yaml'), 'utf8')).replace('gpu-memory: 12Gi', 'gpu-memory: 90Gi');
  await writeFile(path.join(dir, 'big.yaml'), big);
  const refused = await cli(cliPath, ['inject', '-f', path.join(dir, 'big.yaml'), '--metrics', example('dcgm-h100x8.prom')]);
  expect(refused.code).toBe(1);
  expect(refused.stderr.trimEnd().split('\n').at(-1)).toBe('placed 0 of 1; 1 refused: 1 no GPU of model "H100" fits 90Gi');
  expect((await cli(cliPath, ['inject', '--no-such-flag'])).code).toBe(2);
  expect((await cli(cliPath, ['status', '-o', 'table'])).code).toBe(2);
  const missing = await cli(cliPath, ['inject', '-f', path.join(dir, 'nope.yaml'), '--metrics', example('dcgm-h100x8.prom')]);
  expect(missing.code).toBe(3);
  expect(missing.stderr).toContain('mps-injector: cannot read pod file');
  const help = await cli(cliPath, ['--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('Exit codes: 0 ok; 1 a pod was refused or a check failed; 2 usage error; 3 input or I/O error');
});

test('kubectl-mps status and doctor against the stand-in API server through a kubeconfig file', async () => {
  const standIn = await StandInApiServer.start();
  const nowMs = Date.now();
  const cluster = await createGpuCluster(standIn, { nowMs, withoutMpsDaemon: ['gpu-node-2'], config: { metrics: { source: 'exporters', exporterUrls: [], exporterNodes: [] } } });
  try {
    const urls = [...cluster.exporters.values()].map((e) => e.url);
    const dir = await mkdtemp(path.join(tmpdir(), 'cli-e2e-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, standIn.kubeConfig().exportConfig());
    const config = path.join(dir, 'config.yaml');
    await writeFile(config, `cluster: { enabled: true, namespace: mps-injector }\nmetrics: { source: exporters, exporterUrls: [${urls.join(', ')}], exporterNodes: [gpu-node-1, gpu-node-2] }\n`);
    const status = await cli(pluginPath, ['status', '--config', config], { KUBECONFIG: kubeconfig });
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[0]).toMatch(/^NODE\s+GPU\s+MODEL/);
    expect(status.stdout).toMatch(/^gpu-node-1\s+0\s.*ml\/llm-0$/m);
    const doctor = await cli(pluginPath, ['doctor', '--config', config], { KUBECONFIG: kubeconfig });
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/^FAIL {2}MPS control daemon +no Ready MPS control daemon on 1 of 2 GPU nodes: gpu-node-2;/m);
  } finally {
    await cluster.stop();
    await standIn.stop();
  }
});

test('completion scripts for bash and zsh name the commands and flag choices', async () => {
  const bash = await cli(cliPath, ['completion', 'bash']);
  expect(bash.code).toBe(0);
  expect(bash.stdout).toContain('complete -o default -F _mps_injector_completion mps-injector');
  expect(bash.stdout).toMatch(/"status"\) words="--node --namespace -n|"status"\) words=".*--output/);
  expect(bash.stdout).toContain('compgen -W "wide yaml json"');
  const zsh = await cli(cliPath, ['completion', 'zsh']);
  expect(zsh.stdout).toContain('bashcompinit');
  expect((await cli(cliPath, ['completion', 'fish'])).code).toBe(2);
  const plugin = await cli(pluginPath, ['completion', 'bash']);
  expect(plugin.stdout).toContain('complete -o default -F _kubectl_mps_completion kubectl-mps');
  // The script is valid bash.
  const checked = await exec('bash', ['-n', '-c', bash.stdout]).then(() => 0, () => 1);
  expect(checked).toBe(0);
});
