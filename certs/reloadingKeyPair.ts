/**
 * Serve a certificate/key pair (and, for mutual TLS, the CA that client certificates must chain
 * to) from files and swap them into running TLS servers when the files change, without a restart.
 *
 * Change detection: fs.watch on the directories holding the files (a Kubernetes Secret volume
 * is updated by an atomic swap of its `..data` symlink, which a watch on the file itself
 * misses), plus a low-frequency stat poll in case the watch drops events (network and overlay
 * file systems). Events are debounced so a cert+key rewrite is read once.
 *
 * Validate before swap: both files are read and parsed, the key must belong to the
 * certificate and OpenSSL must accept them as a context; only then does every attached server
 * get the new context. A broken or half-written pair is reported and the old one stays.
 * Established connections keep their TLS session; new handshakes get the new pair.
 */
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions, type Server } from 'node:tls';
import { CertificateError, describeCertificate, validateKeyPair, type PemPair } from './issue.js';

/** What the server presents and trusts: the serving pair, and the client CA when mutual TLS is on. */
export interface ServingMaterial extends PemPair {
  /** PEM CA certificate(s) that client certificates must chain to; absent without mutual TLS. */
  clientCaPem?: string;
}

/** What a 'reload' event reports: the pair now being served. */
export interface KeyPairReloadInfo {
  certFile: string;
  keyFile: string;
  subject: string;
  serialHex: string;
  notAfter: Date;
}

/** What a 'clientCaReload' event reports: the client CA changed while the serving pair did not. */
export interface ClientCaReloadInfo {
  clientCaFile: string;
  certificates: number;
}

interface ReloadingKeyPairEvents {
  reload: [info: KeyPairReloadInfo];
  clientCaReload: [info: ClientCaReloadInfo];
  error: [error: CertificateError];
}

const DEFAULT_POLL_INTERVAL_MS = 10_000;
const DEFAULT_DEBOUNCE_MS = 100;

export class ReloadingKeyPair extends EventEmitter<ReloadingKeyPairEvents> {
  private readonly certFile: string;
  private readonly keyFile: string;
  private readonly clientCaFile: string | undefined;
  private readonly contextOptions: SecureContextOptions;
  private readonly pollIntervalMs: number;
  private readonly debounceMs: number;
  private readonly servers = new Set<Server>();
  private readonly watchers = new Map<string, FSWatcher>();
  private current: ServingMaterial | undefined;
  /** Stat signature of the files when last read, so the poll only acts on a change. */
  private lastSignature: string | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private reloading = false;
  private reloadAgain = false;
  private closed = false;

  /**
   * `clientCaFile`: PEM CA certificate(s) that client certificates are verified against, read and
   * reloaded with the pair. `contextOptions`: fixed options (protocol versions, ciphers) that every
   * context gets, the first and each reloaded one.
   */
  constructor(opts: {
    certFile: string;
    keyFile: string;
    clientCaFile?: string;
    contextOptions?: SecureContextOptions;
    pollIntervalMs?: number;
    debounceMs?: number;
  }) {
    super();
    this.certFile = resolve(opts.certFile);
    this.keyFile = resolve(opts.keyFile);
    this.clientCaFile = opts.clientCaFile ? resolve(opts.clientCaFile) : undefined;
    this.contextOptions = opts.contextOptions ?? {};
    this.pollIntervalMs = opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    if (!(this.pollIntervalMs > 0) || !(this.debounceMs >= 0)) {
      throw new CertificateError(
        `certificate reload intervals must be positive (pollIntervalMs ${this.pollIntervalMs}, debounceMs ${this.debounceMs}); pass milliseconds, e.g. 10000 and 100`,
      );
    }
  }

  /**
   * Read and check the pair once; use the result to create the server. Throws a
   * CertificateError naming the file and what to do when the pair cannot be served.
   */
  async load(): Promise<ServingMaterial> {
    const signature = await this.statSignature().catch(() => undefined);
    const pair = await this.readValidPair();
    this.current = pair;
    this.lastSignature = signature;
    return pair;
  }

  /** The certificate being served now (the last pair loaded or applied), or null before load(). */
  servedCertificatePem(): string | null {
    return this.current?.certPem ?? null;
  }

  /**
   * Secure-context options for the material being served now plus the fixed options: what to
   * give https.createServer. Throws before load().
   */
  secureContextOptions(): SecureContextOptions {
    if (this.current === undefined) throw new CertificateError('no certificate loaded yet; call load() before creating the server');
    return this.contextOptionsFor(this.current);
  }

  private contextOptionsFor(material: ServingMaterial): SecureContextOptions {
    return {
      ...this.contextOptions,
      cert: material.certPem,
      key: material.keyPem,
      ...(material.clientCaPem !== undefined ? { ca: material.clientCaPem } : {}),
    };
  }

  /** Swap new pairs into `server` from now on; starts watching the files on the first call. */
  attach(server: Server): void {
    if (this.closed) {
      throw new CertificateError('this certificate reloader was closed; create a new ReloadingKeyPair to attach a server');
    }
    this.servers.add(server);
    if (this.pollTimer) return;
    this.startWatching();
    this.pollTimer = setInterval(() => void this.poll(), this.pollIntervalMs);
    this.pollTimer.unref();
    // Catch a change that landed between load() and now.
    void this.poll();
  }

  /** Stop watching; attached servers keep the pair they have. */
  close(): void {
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    this.servers.clear();
  }

  private startWatching(): void {
    const directories = new Set(this.files().map((file) => dirname(file)));
    for (const directory of directories) {
      if (this.watchers.has(directory)) continue;
      try {
        const watcher = watch(directory, { persistent: false }, () => this.scheduleReload());
        watcher.on('error', () => {
          // The directory went away or the watch broke: the poll keeps going and re-watches.
          watcher.close();
          this.watchers.delete(directory);
        });
        this.watchers.set(directory, watcher);
      } catch {
        // Not watchable now (missing directory, no inotify slots): the poll covers it.
      }
    }
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    this.startWatching();
    const signature = await this.statSignature().catch(() => undefined);
    if (signature !== undefined && signature !== this.lastSignature) this.scheduleReload();
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(), this.debounceMs);
    this.debounceTimer.unref();
  }

  private async reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = true;
    try {
      do {
        this.reloadAgain = false;
        await this.reloadOnce();
      } while (this.reloadAgain && !this.closed);
    } finally {
      this.reloading = false;
    }
  }

  private async reloadOnce(): Promise<void> {
    const signature = await this.statSignature().catch(() => undefined);
    let pair: ServingMaterial;
    try {
      pair = await this.readValidPair();
    } catch (err) {
      this.lastSignature = signature;
      if (!this.closed) this.report(err);
      return;
    }
    this.lastSignature = signature;
    if (this.closed) return;
    const current = this.current;
    if (current && current.certPem === pair.certPem && current.keyPem === pair.keyPem && current.clientCaPem === pair.clientCaPem) return;
    try {
      // The whole context is replaced: the fixed options must come along or Node's defaults return.
      for (const server of this.servers) server.setSecureContext(this.contextOptionsFor(pair));
    } catch (err) {
      this.report(new CertificateError(`cannot apply the new pair ${this.certFile} / ${this.keyFile} to the server (${(err as Error).message}); replace both files with a matching certificate and key`));
      return;
    }
    this.current = pair;
    if (current && current.certPem === pair.certPem && current.keyPem === pair.keyPem) {
      this.emit('clientCaReload', { clientCaFile: this.clientCaFile ?? '', certificates: countCertificates(pair.clientCaPem ?? '') });
      return;
    }
    const described = describeCertificate(pair.certPem);
    this.emit('reload', {
      certFile: this.certFile,
      keyFile: this.keyFile,
      subject: described.subject,
      serialHex: described.serialHex,
      notAfter: described.notAfter,
    });
  }

  private async readValidPair(): Promise<ServingMaterial> {
    const certPem = await readPemFile(this.certFile, 'certificate');
    const keyPem = await readPemFile(this.keyFile, 'private key');
    const pair: ServingMaterial = { certPem, keyPem };
    validateKeyPair(pair, { cert: this.certFile, key: this.keyFile });
    if (this.clientCaFile !== undefined) pair.clientCaPem = await readClientCa(this.clientCaFile);
    try {
      createSecureContext(this.contextOptionsFor(pair));
    } catch (err) {
      throw new CertificateError(
        `TLS refuses the pair ${this.certFile} / ${this.keyFile}${this.clientCaFile ? ` with the client CA ${this.clientCaFile}` : ''} (${(err as Error).message}); replace the files with a matching certificate and key (and a PEM CA certificate)`,
      );
    }
    return pair;
  }

  private files(): string[] {
    return this.clientCaFile === undefined ? [this.certFile, this.keyFile] : [this.certFile, this.keyFile, this.clientCaFile];
  }

  /** Identity of what the paths point at now (symlinks followed), to notice a swap or rewrite. */
  private async statSignature(): Promise<string> {
    const stats = await Promise.all(this.files().map((file) => stat(file)));
    return stats.map((s) => [s.dev, s.ino, s.size, s.mtimeMs].join(':')).join(':');
  }

  /** An 'error' event with no listener would throw; report it as a process warning instead. */
  private report(err: unknown): void {
    const error = err instanceof CertificateError ? err : new CertificateError(`certificate reload failed: ${(err as Error).message}`);
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(`${error.message} (still serving the previous certificate)`, { code: 'MPS_INJECTOR_CERT_RELOAD' });
  }
}

async function readPemFile(path: string, what: 'certificate' | 'private key'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new CertificateError(
      `cannot read the TLS ${what} file ${path}: ${reason}; mount the webhook's TLS Secret there or point the server's tlsCertFile/tlsKeyFile at the pair ("mps-injector certs generate" creates one)`,
    );
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function countCertificates(pem: string): number {
  return pem.match(PEM_CERTIFICATE)?.length ?? 0;
}

/** Read the client CA file: one or more PEM certificates, each a certificate authority. */
async function readClientCa(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new CertificateError(
      `cannot read the client CA file ${path} (server.clientCAFile): ${reason}; mount the PEM CA certificate that signs the API server's client certificate there, or set server.clientCAFile to "" to turn mutual TLS off`,
    );
  }
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new CertificateError(`the client CA file ${path} (server.clientCAFile) holds no PEM certificate; put the CA certificate that signs the API server's client certificate there`);
  }
  for (const [i, block] of blocks.entries()) {
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(block);
    } catch (err) {
      throw new CertificateError(`certificate ${i + 1} in the client CA file ${path} is not a valid X.509 certificate (${(err as Error).message}); replace it with an intact PEM certificate`);
    }
    if (!x509.ca) {
      throw new CertificateError(
        `certificate ${i + 1} in the client CA file ${path} (${x509.subject.split('\n').join(', ')}) is not a certificate authority (basicConstraints cA is not set); put the CA that signed the client certificate there, not the client certificate itself`,
      );
    }
  }
  return pem;
}
