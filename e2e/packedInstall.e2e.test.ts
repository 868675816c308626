/**
 * What a user gets: the npm tarball installed with production dependencies only, and the
 * container image, which must hold exactly the same files.
 *
 * The packed-install part needs a build (`npm run build`; `npm test` builds before the tests)
 * and the npm registry or a warm npm cache for the production dependencies.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Manifest {
  name: string;
  version: string;
  license: string;
  engines: { node: string };
  bin: Record<string, string>;
  files: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Manifest;

/** Paths that `npm pack` ships, as listed in package.json "files" (negations dropped). */
const shippedFiles = manifest.files.filter((entry) => !entry.startsWith('!'));

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string[];
  instructions: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const keyword = (match[1] ?? '').toUpperCase();
    const args = match[2] ?? '';
    if (keyword === 'FROM') stages.push({ from: args.split(/\s+/), instructions: [] });
    else stages.at(-1)?.instructions.push({ keyword, args });
  }
  return stages;
}

function execForm(args: string): unknown {
  return JSON.parse(args);
}

function fromImage(stage: Stage): string {
  const image = stage.from.find((token) => !token.startsWith('--'));
  if (image === undefined) throw new Error(`FROM without an image: ${stage.from.join(' ')}`);
  return image;
}

describe('the Dockerfile', () => {
  const stages = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
  const runtime = stages.at(-1) as Stage;
  const all = (keyword: string): Instruction[] => runtime.instructions.filter((i) => i.keyword === keyword);
  const workdir = all('WORKDIR').at(-1)?.args ?? '/';

  test('has a build stage and a runtime stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime.from.slice(-2)).toEqual(['AS', 'runtime']);
    expect(workdir).toBe('/app');
  });

  test('pins both base images by exact tag and digest, the build image satisfying "engines"', () => {
    const build = fromImage(stages[0] as Stage);
    const buildMatch = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim@sha256:[0-9a-f]{64}$/.exec(build);
    expect(buildMatch).not.toBeNull();
    const [major, minor] = [Number(buildMatch?.[1]), Number(buildMatch?.[2])];
    const engines = /^>=(\d+)\.(\d+)/.exec(manifest.engines.node);
    expect(engines).not.toBeNull();
    expect(major).toBe(Number(engines?.[1]));
    expect(minor).toBeGreaterThanOrEqual(Number(engines?.[2]));
    expect(fromImage(runtime)).toMatch(new RegExp(`^gcr\\.io/distroless/nodejs${major}-debian12:[\\w.-]+@sha256:[0-9a-f]{64}$`));
  });

  test('copies into the runtime stage exactly the package "files" plus package.json and node_modules', () => {
    const copied = all('COPY').map(({ args }) => {
      const tokens = args.split(/\s+/).filter((t) => !t.startsWith('--'));
      expect(args).toMatch(/--from=build\b/);
      expect(tokens).toHaveLength(2); // one source per line keeps the comparison exact
      const [source, dest] = tokens as [string, string];
      let target = dest.replace(/^\.\//, '');
      if (target === '.' || target.endsWith('/')) target = `${target === '.' ? '' : target}${basename(source)}`;
      if (target.startsWith(`${workdir}/`)) target = target.slice(workdir.length + 1);
      expect(source).toBe(`/src/${target}`); // same relative path as in the build stage
      return target;
    });
    expect([...copied].sort()).toEqual([...shippedFiles, 'package.json', 'node_modules'].sort());
    expect(all('ADD')).toEqual([]);
  });

  test('every runtime file that is not a build output exists in the build context', () => {
    const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const needed = [...shippedFiles.filter((f) => f !== 'dist'), 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
    for (const path of needed) {
      expect(existsSync(join(repoRoot, path))).toBe(true);
      const top = path.split('/')[0];
      expect(ignored.filter((pattern) => pattern === path || pattern === top || pattern === '*' || pattern === '**')).toEqual([]);
    }
    for (const excluded of ['.git', 'node_modules', 'dist', 'coverage', 'tools', 'e2e', 'bench', '**/*.test.ts', '**/testdata', '**/fixtures']) {
      expect(ignored).toContain(excluded);
    }
  });

  test('runs the package bin as a numeric non-root user, exec form, serving on 8443 by default', () => {
    const user = all('USER').at(-1)?.args ?? '';
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(all('EXPOSE').map((e) => e.args)).toEqual(['8443']);
    const bin = manifest.bin['mps-injector'];
    expect(bin).toBeDefined();
    expect(execForm(all('ENTRYPOINT').at(-1)?.args ?? '')).toEqual(['/nodejs/bin/node', `${workdir}/${bin}`]);
    expect(execForm(all('CMD').at(-1)?.args ?? '')).toEqual(['serve', '--config', '/etc/mps-injector/config.yaml']);
  });

  test('labels the image with the OCI annotations, version and revision from build arguments', () => {
    const labels = new Map<string, string>();
    for (const { args } of all('LABEL')) {
      for (const m of args.matchAll(/([\w.-]+)="([^"]*)"/g)) labels.set(m[1] as string, m[2] as string);
    }
    const oci = (key: string): string | undefined => labels.get(`org.opencontainers.image.${key}`);
    expect(oci('title')).toBe(manifest.name);
    expect(oci('licenses')).toBe(manifest.license);
    expect(oci('source')).toMatch(/^https:\/\/github\.com\/[\w.-]+\/mps-injector$/);
    expect(oci('description')?.length).toBeGreaterThan(20);
    expect(oci('version')).toBe('${VERSION}');
    expect(oci('revision')).toBe('${REVISION}');
    const args = all('ARG').map((a) => a.args.split('=')[0]);
    expect(args).toEqual(expect.arrayContaining(['VERSION', 'REVISION']));
  });

  test('production dependencies run no install scripts (the build stage may run on the builder platform)', () => {
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; hasInstallScript?: boolean }>;
    };
    const withScripts = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && entry.dev !== true && entry.hasInstallScript === true)
      .map(([path]) => path);
    expect(withScripts).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// npm pack + npm install --omit=dev

/** The environment of a child process, without the variables `npm run` sets for this project. */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_cafile']);
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('npm_') && !keep.has(key)) continue;
    if (key === 'NODE_PATH' || key === 'NODE_OPTIONS' || key === 'INIT_CWD') continue;
    env[key] = value;
  }
  env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
  return env;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface HttpsAnswer {
  status: number;
  body: string;
  peerSubjectCn: string | undefined;
}

function httpsGet(port: number, path: string, ca: string | undefined): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', ...(ca === undefined ? {} : { ca }), timeout: 5000, minVersion: 'TLSv1.2' }, (res) => {
      const cert = (res.socket as TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerSubjectCn: [cert.subject?.CN].flat()[0] }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Retry GET until the server accepts connections: bounded, and given up as soon as the process exits. */
async function waitForHttps(child: ChildProcess, port: number, path: string, ca: string, output: () => string): Promise<HttpsAnswer> {
  const deadline = Date.now() + 30_000;
  let exitCode: number | null | undefined;
  void exited(child).then((code) => (exitCode = code));
  for (let attempt = 1; ; attempt += 1) {
    if (exitCode !== undefined) throw new Error(`mps-injector serve exited with ${String(exitCode)} before answering:\n${output()}`);
    try {
      return await httpsGet(port, path, ca);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNREFUSED' && code !== 'ECONNRESET') throw err;
      if (Date.now() > deadline) throw new Error(`mps-injector serve did not listen on ${port} within 30 s (${attempt} tries):\n${output()}`, { cause: err });
      await new Promise<void>((resolve) => setTimeout(resolve, Math.min(50 * attempt, 250)));
    }
  }
}

describe('the packed package, installed without dev dependencies', () => {
  let work: string;
  let project: string;
  let installed: string;
  let bin: string;
  let packedPaths: string[];
  const env = cleanEnv();

  beforeAll(async () => {
    if (!existsSync(join(repoRoot, manifest.bin['mps-injector'] ?? 'dist/cli/main.js'))) {
      throw new Error('dist/cli/main.js is missing: run `npm run build` before this test (`npm test` does)');
    }
    work = mkdtempSync(join(tmpdir(), 'mps-injector-packed-'));
    // --ignore-scripts: the test packs the build that `npm test` just made instead of building twice.
    const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: repoRoot, env, maxBuffer: 64 * 1024 * 1024 });
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    if (!info) throw new Error(`npm pack printed no package: ${packed.stdout}`);
    packedPaths = info.files.map((f) => f.path);
    const tarball = join(work, info.filename);

    project = join(work, 'project');
    await run('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'packed-install-check', version: '1.0.0', private: true }, null, 2));
    await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', tarball], {
      cwd: project,
      env,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 280_000,
    });
    installed = join(project, 'node_modules', manifest.name);
    bin = join(project, 'node_modules', '.bin', 'mps-injector');
  }, 300_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the program and the examples, and no tests or TypeScript sources', () => {
    expect(packedPaths).toEqual(expect.arrayContaining(['package.json', manifest.bin['mps-injector'], 'examples/pod.yaml', 'examples/dcgm-h100x8.prom']));
    expect(packedPaths.filter((p) => /\.test\.|(^|\/)(e2e|testdata|fixtures)\//.test(p))).toEqual([]);
    expect(packedPaths.filter((p) => p.endsWith('.ts'))).toEqual([]);
  });

  test('no test support is shipped: no stand-in, no fixture builder, no bench', () => {
    expect(packedPaths.filter((p) => /(^|\/)(testing|bench)\/|standIn/i.test(p))).toEqual([]);
  });

  test('no dev-only package is installed', () => {
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const prodNames = new Set(
      Object.entries(lock.packages)
        .filter(([path, entry]) => path !== '' && entry.dev !== true)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    const devOnly = [...Object.keys(manifest.devDependencies), '@jest/core', 'ts-node', '@babel/core'].filter((name) => !prodNames.has(name));
    expect(devOnly).toEqual(expect.arrayContaining(['jest', 'ts-jest', 'typescript', 'eslint']));
    const present = devOnly.filter((name) => existsSync(join(project, 'node_modules', name)));
    expect(present).toEqual([]);
    for (const name of Object.keys(manifest.dependencies)) expect(existsSync(join(project, 'node_modules', name))).toBe(true);
    expect(readdirSync(join(project, 'node_modules')).length).toBeGreaterThan(Object.keys(manifest.dependencies).length);
  });

  test('the install puts the kubectl plugin `kubectl-mps` on the PATH with the cluster commands', async () => {
    const { stdout } = await run(join(project, 'node_modules', '.bin', 'kubectl-mps'), ['--help'], { cwd: project, env });
    expect(stdout).toContain('kubectl mps status');
    for (const command of ['status', 'explain', 'doctor']) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  test('`mps-injector --version` prints the package.json version', async () => {
    const { stdout } = await run(bin, ['--version'], { cwd: project, env });
    expect(stdout.trim()).toBe(manifest.version);
  });

  test('`mps-injector inject` places the bundled example pod on the bundled metrics dump', async () => {
    const { stdout, stderr } = await run(bin, ['inject', '-f', join(installed, 'examples', 'pod.yaml'), '--metrics', join(installed, 'examples', 'dcgm-h100x8.prom')], {
      cwd: project,
      env,
    });
    const pod = parseYaml(stdout) as {
      kind: string;
      metadata: { name: string; annotations: Record<string, string> };
      spec: { nodeSelector: Record<string, string>; initContainers?: { name: string }[]; containers: { name: string; env?: { name: string; value?: string }[] }[] };
    };
    expect(pod.kind).toBe('Pod');
    expect(pod.metadata.name).toBe('llm-inference');
    const annotations = pod.metadata.annotations;
    const node = annotations['mps-injector.io/node'];
    expect(node).toBeTruthy();
    expect(pod.spec.nodeSelector['kubernetes.io/hostname']).toBe(node);
    expect(annotations['mps-injector.io/thread-percent']).toBe('30');
    expect(annotations['mps-injector.io/decision']?.length).toBeGreaterThan(10);
    expect(stderr).toContain(annotations['mps-injector.io/decision']);
    expect(pod.spec.initContainers?.[0]?.name).toBe('mps-injector-wait-mps');
    const server = pod.spec.containers.find((c) => c.name === 'server');
    const envOf = new Map((server?.env ?? []).map((e) => [e.name, e.value]));
    expect(envOf.get('CUDA_MPS_ACTIVE_THREAD_PERCENTAGE')).toBe('30');
    expect(envOf.get('CUDA_MPS_PINNED_DEVICE_MEM_LIMIT')).toBe('0=12288M');
    expect(envOf.get('NVIDIA_VISIBLE_DEVICES')).toBe(annotations['mps-injector.io/gpu-uuid']);
    expect(envOf.get('CUDA_MPS_CLIENT_PRIORITY')).toBe('0');
  });

  test('`mps-injector simulate` finds the shipped trace and cluster inside the installed package', async () => {
    const { stdout } = await run(bin, ['simulate', '--trace', 'burst', '--cluster', 'h100-4x8', '--strategies', 'mps-injector', '--json'], {
      cwd: project,
      env,
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(stdout) as { traces: { trace: string; pods: number; strategies: { strategy: string; admitted: number; refused: number }[] }[] };
    expect(report.traces.map((t) => t.trace)).toEqual(['burst']);
    const [trace] = report.traces;
    expect(trace?.strategies.map((s) => s.strategy)).toEqual(['mps-injector']);
    const admitted = trace?.strategies[0]?.admitted ?? 0;
    const refused = trace?.strategies[0]?.refused ?? 0;
    expect(admitted).toBeGreaterThan(0);
    expect(admitted + refused).toBe(trace?.pods);
  }, 60_000);

  test('`mps-injector serve` answers /healthz over TLS with certificates from `mps-injector certs generate`', async () => {
    const certDir = join(work, 'certs');
    const generated = await run(bin, ['certs', 'generate', '--service', 'mps-injector', '--namespace', 'mps-system', '--san', '127.0.0.1', '--out', certDir], { cwd: project, env });
    expect(generated.stdout).toContain(certDir);
    for (const file of ['ca.crt', 'tls.crt', 'tls.key']) expect(existsSync(join(certDir, file))).toBe(true);
    const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');

    const port = await freePort();
    const configPath = join(work, 'config.yaml');
    writeFileSync(
      configPath,
      [
        'server:',
        '  host: 127.0.0.1',
        `  port: ${port}`,
        `  tlsCertFile: ${join(certDir, 'tls.crt')}`,
        `  tlsKeyFile: ${join(certDir, 'tls.key')}`,
        '  shutdownGraceSeconds: 1',
        '  drainDelaySeconds: 0',
        '  logLevel: info',
        'metrics:',
        '  source: file',
        `  file: ${join(installed, 'examples', 'dcgm-h100x8.prom')}`,
        '',
      ].join('\n'),
    );

    const child = spawn(bin, ['serve', '--config', configPath], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const health = await waitForHttps(child, port, '/healthz', ca, () => output);
      expect(health.status).toBe(200);
      expect(health.peerSubjectCn).toBe('mps-injector.mps-system.svc');
      // The same server is refused by a client that does not trust the generated CA.
      await expect(httpsGet(port, '/healthz', undefined)).rejects.toThrow(/self.signed|unable to (get|verify)/i);
    } finally {
      const done = exited(child);
      child.kill('SIGTERM');
      await done;
    }
  }, 60_000);
});
