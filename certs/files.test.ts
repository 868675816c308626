import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertFileNames, writeCertificateFiles } from './files.js';
import { CertificateError, generateCertificates, keyMatchesCertificate } from './issue.js';

const bundle = generateCertificates({ service: 'mps-injector', namespace: 'gpu-system' });
let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'certs-files-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

test('writes the four files, creating the directory, keys readable by the owner only', async () => {
  const dir = join(root, 'nested', 'tls');
  const paths = await writeCertificateFiles(dir, bundle);

  expect(paths).toEqual({
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'tls.crt'),
    key: join(dir, 'tls.key'),
  });
  expect((await readdir(dir)).sort()).toEqual(Object.values(CertFileNames).sort());
  expect(await readFile(paths.caCert, 'utf8')).toBe(bundle.ca.certPem);
  expect(await readFile(paths.caKey, 'utf8')).toBe(bundle.ca.keyPem);
  expect(await readFile(paths.cert, 'utf8')).toBe(bundle.serving.certPem);
  expect(await readFile(paths.key, 'utf8')).toBe(bundle.serving.keyPem);

  expect((await stat(paths.key)).mode & 0o777).toBe(0o600);
  expect((await stat(paths.caKey)).mode & 0o777).toBe(0o600);
  expect((await stat(paths.cert)).mode & 0o777).toBe(0o644);
  expect((await stat(paths.caCert)).mode & 0o777).toBe(0o644);
});

test('replaces existing files whole, keeps the key mode, leaves no temporary files', async () => {
  await writeFile(join(root, 'tls.key'), 'old key', { mode: 0o666 });
  await writeFile(join(root, 'tls.crt'), 'old cert');
  const second = generateCertificates({ service: 'other', namespace: 'ns' });

  const paths = await writeCertificateFiles(root, second);

  const pair = { certPem: await readFile(paths.cert, 'utf8'), keyPem: await readFile(paths.key, 'utf8') };
  expect(pair.certPem).toBe(second.serving.certPem);
  expect(keyMatchesCertificate(pair)).toBe(true);
  expect((await stat(paths.key)).mode & 0o777).toBe(0o600);
  expect((await readdir(root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
});

test('a directory that cannot be created gives a CertificateError naming it', async () => {
  const blocker = join(root, 'a-file');
  await writeFile(blocker, 'x');
  const dir = join(blocker, 'tls');

  const attempt = writeCertificateFiles(dir, bundle);

  await expect(attempt).rejects.toBeInstanceOf(CertificateError);
  await expect(attempt).rejects.toThrow(`cannot create the certificate directory ${dir}`);
});

test('a file that cannot be replaced gives a CertificateError naming it and leaves no temporary file', async () => {
  await mkdir(join(root, 'tls.key'));

  await expect(writeCertificateFiles(root, bundle)).rejects.toThrow(`cannot write ${join(root, 'tls.key')}: a directory is in the way`);
  expect((await readdir(root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
});
