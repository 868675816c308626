import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../config/schema.js';
import { InitEnv } from '../domain/names.js';
import { WAIT_FOR_MPS_SCRIPT, buildWaitForMpsContainer } from './waitForMpsContainer.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mps-wait-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function envFor(timeoutSeconds: number): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], MPS_PIPE: dir, MPS_HOST_PIPE: '/run/nvidia/mps/pipe', MPS_TIMEOUT: String(timeoutSeconds), MPS_NODE: 'gpu-node-1' };
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr.toString()}`);
}

describe('the built-in wait script', () => {
  test('reads every init container variable', () => {
    for (const name of Object.values(InitEnv)) expect(WAIT_FOR_MPS_SCRIPT).toContain(`\${${name}}`);
  });

  test('succeeds at once when the control pipe exists', () => {
    mkfifo(join(dir, 'control'));
    const r = spawnSync('sh', ['-c', WAIT_FOR_MPS_SCRIPT], { env: envFor(0), encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`MPS control pipe ready at ${dir}/control on node gpu-node-1`);
  });

  test('fails after the timeout with a message naming node, path and what to check', () => {
    const r = spawnSync('sh', ['-c', WAIT_FOR_MPS_SCRIPT], { env: envFor(0), encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`no MPS control pipe at ${dir}/control (node directory /run/nvidia/mps/pipe) on node gpu-node-1 after 0s`);
    expect(r.stderr).toContain('Is the MPS control daemon running on this node?');
    expect(r.stderr).toContain('mpsDaemon values');
  });

  test('a regular file named control is not the pipe', () => {
    writeFileSync(join(dir, 'control'), '');
    const r = spawnSync('sh', ['-c', WAIT_FOR_MPS_SCRIPT], { env: envFor(0), encoding: 'utf8' });
    expect(r.status).toBe(1);
  });

  test('succeeds once the pipe appears while it waits', async () => {
    const child = spawn('sh', ['-c', WAIT_FOR_MPS_SCRIPT], { env: envFor(30) });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    mkfifo(join(dir, 'control'));
    expect(await exited).toBe(0);
    expect(stdout).toContain('MPS control pipe ready');
  });
});

describe('buildWaitForMpsContainer', () => {
  const injection = buildConfig({ injection: { hostPipeDirectory: '/host/pipe', containerPipeDirectory: '/pipe' } }).injection;

  test('mounts the named pipe volume read-only at the container pipe directory and sets its env', () => {
    const c = buildWaitForMpsContainer('node-a', 'mps-injector-pipe-2', injection);
    expect(c.volumeMounts).toEqual([{ name: 'mps-injector-pipe-2', mountPath: '/pipe', readOnly: true }]);
    expect(c.env).toEqual([
      { name: 'MPS_PIPE', value: '/pipe' },
      { name: 'MPS_HOST_PIPE', value: '/host/pipe' },
      { name: 'MPS_TIMEOUT', value: '120' },
      { name: 'MPS_NODE', value: 'node-a' },
    ]);
    expect(c.command).toEqual(['sh', '-c', WAIT_FOR_MPS_SCRIPT]);
    expect(c.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(c.resources?.limits).toEqual({ cpu: '100m', memory: '32Mi' });
  });

  test('does not share the configured command array', () => {
    const cfg = buildConfig({ injection: { initContainer: { command: ['/wait'] } } }).injection;
    const c = buildWaitForMpsContainer('n', 'p', cfg);
    c.command?.push('--extra');
    expect(cfg.initContainer.command).toEqual(['/wait']);
  });
});
