/**
 * Writing a certificate bundle to disk: each file appears whole or not at all (written to a
 * temporary name in the same directory, then renamed over the target), private keys 0600.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateError, type CertificateBundle } from './issue.js';

export const CertFileNames = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

const PUBLIC_MODE = 0o644;
const PRIVATE_MODE = 0o600;

/**
 * Write ca.crt, ca.key, tls.crt and tls.key into `dir` (created when missing) and return
 * their paths. Each key is written just before its certificate, so a reader that watches the
 * serving pair sees the two change within moments of each other (see ReloadingKeyPair).
 */
export async function writeCertificateFiles(
  dir: string,
  bundle: CertificateBundle,
): Promise<{ caCert: string; cert: string; key: string; caKey: string }> {
  const paths = {
    caCert: join(dir, CertFileNames.caCert),
    caKey: join(dir, CertFileNames.caKey),
    cert: join(dir, CertFileNames.cert),
    key: join(dir, CertFileNames.key),
  };
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new CertificateError(`cannot create the certificate directory ${dir}: ${describeFsError(err)}; choose a directory you can write to`);
  }
  await writeFileAtomically(paths.caKey, bundle.ca.keyPem, PRIVATE_MODE);
  await writeFileAtomically(paths.caCert, bundle.ca.certPem, PUBLIC_MODE);
  await writeFileAtomically(paths.key, bundle.serving.keyPem, PRIVATE_MODE);
  await writeFileAtomically(paths.cert, bundle.serving.certPem, PUBLIC_MODE);
  return paths;
}

async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, content, { mode, flag: 'wx', flush: true });
    // The process umask may have narrowed the mode; the key modes must be exact.
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new CertificateError(`cannot write ${path}: ${describeFsError(err)}; choose a directory you can write to, or fix its permissions`);
  }
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'the file system is read-only',
    ENOTDIR: 'a part of the path is a file, not a directory',
    ENOSPC: 'no space left on the device',
    EISDIR: 'a directory is in the way',
  };
  return (code && reasons[code]) ?? (err as Error).message;
}
