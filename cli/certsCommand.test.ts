import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describeCertificate, keyMatchesCertificate } from '../certs/issue.js';
import { registerCertsCommand } from './certsCommand.js';
import { CliError } from './cliError.js';

let dir: string;
let out: string;
let program: Command;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certs-cli-'));
  out = '';
  program = new Command('mps-injector').exitOverride().configureOutput({
    writeOut: (text) => (out += text),
    writeErr: () => undefined,
  });
  registerCertsCommand(program);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (args: string[]) => program.parseAsync(args, { from: 'user' });

test('certs generate writes a chained pair with the requested SANs and reports what it wrote', async () => {
  const target = join(dir, 'tls');
  await run([
    'certs', 'generate',
    '--service', 'mps-injector',
    '--namespace', 'gpu-system',
    '--san', 'webhook.example.com',
    '--san', '192.168.10.7',
    '--out', target,
    '--ca-days', '100',
    '--leaf-days', '7',
  ]);

  const caPem = await readFile(join(target, 'ca.crt'), 'utf8');
  const certPem = await readFile(join(target, 'tls.crt'), 'utf8');
  const keyPem = await readFile(join(target, 'tls.key'), 'utf8');
  const caKeyPem = await readFile(join(target, 'ca.key'), 'utf8');
  expect(keyMatchesCertificate({ certPem, keyPem })).toBe(true);
  expect(keyMatchesCertificate({ certPem: caPem, keyPem: caKeyPem })).toBe(true);
  expect(new X509Certificate(certPem).checkIssued(new X509Certificate(caPem))).toBe(true);
  expect((await stat(join(target, 'tls.key'))).mode & 0o777).toBe(0o600);

  const serving = describeCertificate(certPem);
  expect(serving.dnsNames).toEqual([
    'mps-injector',
    'mps-injector.gpu-system',
    'mps-injector.gpu-system.svc',
    'mps-injector.gpu-system.svc.cluster.local',
    'webhook.example.com',
  ]);
  expect(serving.ipAddresses).toEqual(['192.168.10.7']);
  const leafDays = (serving.notAfter.getTime() - Date.now()) / 86_400_000;
  expect(leafDays).toBeGreaterThan(6.9);
  expect(leafDays).toBeLessThanOrEqual(7);
  const caDays = (describeCertificate(caPem).notAfter.getTime() - Date.now()) / 86_400_000;
  expect(caDays).toBeGreaterThan(99.9);
  expect(caDays).toBeLessThanOrEqual(100);

  for (const name of ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']) expect(out).toContain(`wrote ${join(target, name)}`);
  expect(out).toContain('SANs: DNS:mps-injector, DNS:mps-injector.gpu-system, DNS:mps-injector.gpu-system.svc, DNS:mps-injector.gpu-system.svc.cluster.local, DNS:webhook.example.com, IP:192.168.10.7');
  expect(out).toContain(`kubectl -n gpu-system create secret tls mps-injector-tls --cert=${join(target, 'tls.crt')}`);
});

test('defaults: no extra SANs, 30-day serving certificate', async () => {
  await run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--out', dir]);
  const serving = describeCertificate(await readFile(join(dir, 'tls.crt'), 'utf8'));
  expect(serving.dnsNames).toEqual(['hook', 'hook.ns', 'hook.ns.svc', 'hook.ns.svc.cluster.local']);
  expect(serving.ipAddresses).toEqual([]);
  expect(Math.round((serving.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(30);
});

test('an empty service name is bad input: CliError with exit code 2 and nothing written', async () => {
  const attempt = run(['certs', 'generate', '--service', '', '--namespace', 'ns', '--out', dir]);
  await expect(attempt).rejects.toBeInstanceOf(CliError);
  await expect(attempt).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('service name "" is not a valid Kubernetes name') });
  await expect(stat(join(dir, 'tls.crt'))).rejects.toMatchObject({ code: 'ENOENT' });
});

test('an unwritable output directory is an I/O error: CliError with exit code 3 naming it', async () => {
  const blocker = join(dir, 'a-file');
  await writeFile(blocker, 'x');
  const attempt = run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--out', join(blocker, 'tls')]);
  await expect(attempt).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining(`cannot create the certificate directory ${join(blocker, 'tls')}`) });
  await expect(attempt).rejects.toBeInstanceOf(CliError);
});

test('bad SANs and day counts are bad input', async () => {
  await expect(run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--san', 'bad name', '--out', dir])).rejects.toMatchObject({
    exitCode: 2,
    message: expect.stringContaining('extra SAN "bad name"'),
  });
  await expect(run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--leaf-days', '1.5', '--out', dir])).rejects.toMatchObject({
    exitCode: 2,
    message: '--leaf-days must be a whole number of days, got "1.5"',
  });
  await expect(run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--ca-days', '0', '--out', dir])).rejects.toMatchObject({
    exitCode: 2,
    message: expect.stringContaining('CA validity must be a whole number of days from 1'),
  });
});

test('existing files are kept unless --force is given', async () => {
  await run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--out', dir]);
  const firstCa = await readFile(join(dir, 'ca.crt'), 'utf8');

  await expect(run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--out', dir])).rejects.toMatchObject({
    exitCode: 2,
    message: expect.stringContaining('already holds ca.crt, ca.key, tls.crt, tls.key; pass --force'),
  });
  expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(firstCa);

  await run(['certs', 'generate', '--service', 'hook', '--namespace', 'ns', '--out', dir, '--force']);
  expect(await readFile(join(dir, 'ca.crt'), 'utf8')).not.toBe(firstCa);
});

test('a missing required option is a commander usage error', async () => {
  await expect(run(['certs', 'generate', '--service', 'hook', '--out', dir])).rejects.toMatchObject({ code: 'commander.missingMandatoryOptionValue' });
});
