/**
 * The MPS daemon's start script (charts/mps-injector/files/start-mps-daemon.sh) and readiness
 * probe (files/check-mps-daemon.sh), run for real under /bin/sh with stand-ins for nvidia-smi
 * and nvidia-cuda-mps-control on a private PATH. The stand-in daemon serves a real FIFO
 * control pipe, so "quit" and the probe's query travel the way they do on a node.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chartDir } from './renderChart.js';

const script = path.join(chartDir, 'files/start-mps-daemon.sh');
const probe = path.join(chartDir, 'files/check-mps-daemon.sh');

const NVIDIA_SMI = `#!/bin/sh
echo "nvidia-smi $*" >> "$STUB_LOG"
`;

const MPS_CONTROL = `#!/bin/sh
if [ "\${1:-}" = "-f" ]; then
  echo "daemon pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY thread=\${CUDA_MPS_ACTIVE_THREAD_PERCENTAGE:-unset} mem=\${CUDA_MPS_PINNED_DEVICE_MEM_LIMIT:-unset}" >> "$STUB_LOG"
  if [ "\${STUB_DAEMON_EXIT:-}" != "" ]; then exit "$STUB_DAEMON_EXIT"; fi
  mkfifo "$CUDA_MPS_PIPE_DIRECTORY/control"
  echo "stub-daemon-ready"
  while read -r cmd < "$CUDA_MPS_PIPE_DIRECTORY/control"; do
    echo "daemon got $cmd" >> "$STUB_LOG"
    if [ "$cmd" = quit ]; then break; fi
  done
  rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
  exit 0
fi
cmd=$(cat)
printf '%s\\n' "$cmd" > "$CUDA_MPS_PIPE_DIRECTORY/control"
if [ "$cmd" = get_default_active_thread_percentage ]; then printf "%s\\n" "\${STUB_ANSWER- 100.0 }"; fi
`;

interface Sandbox {
  dir: string;
  bin: string;
  log: string;
  pipe: string;
}

/** A PATH holding only the tools the script and the stand-ins use, plus the chosen stand-ins. */
async function sandbox(stubs: { smi: boolean; control: boolean }): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-daemon-script-'));
  const bin = path.join(dir, 'bin');
  const pipe = path.join(dir, 'pipe');
  await mkdir(bin);
  await mkdir(pipe);
  for (const tool of ['rm', 'cat', 'mkfifo', 'timeout']) {
    const found = ['/usr/bin', '/bin'].map((d) => path.join(d, tool));
    const target = found.find((f) => existsSync(f));
    if (!target) throw new Error(`${tool} not found in /usr/bin or /bin`);
    await symlink(target, path.join(bin, tool));
  }
  if (stubs.smi) await writeFile(path.join(bin, 'nvidia-smi'), NVIDIA_SMI, { mode: 0o755 });
  if (stubs.control) await writeFile(path.join(bin, 'nvidia-cuda-mps-control'), MPS_CONTROL, { mode: 0o755 });
  const log = path.join(dir, 'calls.log');
  await writeFile(log, '');
  return { dir, bin, log, pipe };
}

interface Run {
  /** Resolves once the stand-in daemon listens on its control pipe. */
  ready: Promise<void>;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
}

function runScript(box: Sandbox, env: Record<string, string>): Run {
  const child = spawn('/bin/sh', [script], {
    env: {
      PATH: box.bin,
      STUB_LOG: box.log,
      MPS_PIPE_DIRECTORY: box.pipe,
      MPS_LOG_DIRECTORY: path.join(box.dir, 'log'),
      SET_EXCLUSIVE_PROCESS: 'true',
      RESTORE_COMPUTE_MODE: 'true',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes('stub-daemon-ready')) markReady();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return { ready, exited, kill: (signal) => child.kill(signal) };
}

const calls = async (box: Sandbox): Promise<string[]> => (await readFile(box.log, 'utf8')).split('\n').filter((l) => l !== '');

test('sets EXCLUSIVE_PROCESS, runs the daemon with no default limits, quits it through the pipe on SIGTERM and restores DEFAULT', async () => {
  const box = await sandbox({ smi: true, control: true });
  // Limits in the pod env must not reach the daemon: a client can only lower them.
  const run = runScript(box, { CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: '50', CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: '0=1G' });
  await run.ready;
  run.kill('SIGTERM');
  const result = await run.exited;
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(await calls(box)).toEqual([
    'nvidia-smi --compute-mode=EXCLUSIVE_PROCESS',
    `daemon pipe=${box.pipe} log=${path.join(box.dir, 'log')} thread=unset mem=unset`,
    'daemon got quit',
    'nvidia-smi --compute-mode=DEFAULT',
  ]);
});

test('leaves the compute mode alone when told to', async () => {
  const box = await sandbox({ smi: true, control: true });
  const run = runScript(box, { SET_EXCLUSIVE_PROCESS: 'false' });
  await run.ready;
  run.kill('SIGTERM');
  expect((await run.exited).code).toBe(0);
  expect((await calls(box)).filter((c) => c.startsWith('nvidia-smi'))).toEqual([]);
});

test('keeps EXCLUSIVE_PROCESS on exit when restoring is off', async () => {
  const box = await sandbox({ smi: true, control: true });
  const run = runScript(box, { RESTORE_COMPUTE_MODE: 'false' });
  await run.ready;
  run.kill('SIGTERM');
  expect((await run.exited).code).toBe(0);
  expect((await calls(box)).filter((c) => c.startsWith('nvidia-smi'))).toEqual(['nvidia-smi --compute-mode=EXCLUSIVE_PROCESS']);
});

test("a daemon that dies passes its exit status on (so the kubelet restarts it), after restoring the mode", async () => {
  const box = await sandbox({ smi: true, control: true });
  const run = runScript(box, { STUB_DAEMON_EXIT: '3' });
  const result = await run.exited;
  expect(result.code).toBe(3);
  expect((await calls(box)).at(-1)).toBe('nvidia-smi --compute-mode=DEFAULT');
});

test('without the driver tools it stops at once and says which runtime setting to fix', async () => {
  const box = await sandbox({ smi: true, control: false });
  const result = await runScript(box, {}).exited;
  expect(result.code).toBe(1);
  expect(result.stderr).toContain('nvidia-cuda-mps-control is missing from the container');
  expect(result.stderr).toContain('mpsDaemon.runtimeClassName');
  expect(await calls(box)).toEqual([]);
});

describe('readiness probe (check-mps-daemon.sh)', () => {
  function runProbe(box: Sandbox, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn('/bin/sh', [probe], { env: { PATH: box.bin, STUB_LOG: box.log, MPS_PIPE_DIRECTORY: box.pipe, MPS_PROBE_TIMEOUT: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  }

  test('Ready while the daemon answers through its control pipe', async () => {
    const box = await sandbox({ smi: true, control: true });
    const run = runScript(box, {});
    await run.ready;
    try {
      const result = await runProbe(box);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toContain(`mps-daemon ready: ${box.pipe}/control answers (default active thread percentage 100.0)`);
      expect(await calls(box)).toContain('daemon got get_default_active_thread_percentage');
    } finally {
      run.kill('SIGTERM');
      await run.exited;
    }
  });

  test('NotReady without a control pipe', async () => {
    const box = await sandbox({ smi: true, control: true });
    const result = await runProbe(box);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no control pipe at ${box.pipe}/control`);
  });

  test('NotReady when a dead daemon left its pipe behind: the query times out', async () => {
    const box = await sandbox({ smi: true, control: true });
    await new Promise<void>((resolve, reject) => spawn(path.join(box.bin, 'mkfifo'), [path.join(box.pipe, 'control')]).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mkfifo exited ${code}`)))));
    const result = await runProbe(box);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no answer through ${box.pipe}/control within 1s`);
  });

  test('NotReady when the answer is not a number', async () => {
    const box = await sandbox({ smi: true, control: true });
    const run = runScript(box, {});
    await run.ready;
    try {
      const result = await runProbe(box, { STUB_ANSWER: 'Cannot find MPS control daemon process' });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('unexpected answer through');
    } finally {
      run.kill('SIGTERM');
      await run.exited;
    }
  });
});
