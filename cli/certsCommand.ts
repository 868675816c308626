/**
 * `mps-injector certs generate`: a CA and a serving certificate for the webhook Service,
 * written as ca.crt, ca.key, tls.crt and tls.key, for clusters without cert-manager.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CertFileNames, writeCertificateFiles } from '../certs/files.js';
import { CertificateError, describeCertificate, generateCertificates } from '../certs/issue.js';
import { CliError, ExitCode } from './cliError.js';

export interface CertsGenerateOptions {
  service: string;
  namespace: string;
  san: string[];
  out: string;
  caDays?: string;
  leafDays?: string;
  force?: boolean;
}

/** Generate and write the files; returns the report to print. Throws CliError: exit 2 for bad input, 3 when the files cannot be written. */
export async function runCertsGenerate(opts: CertsGenerateOptions, now: Date = new Date()): Promise<string> {
  const caValidityDays = parseDays(opts.caDays, '--ca-days');
  const leafValidityDays = parseDays(opts.leafDays, '--leaf-days');
  if (!opts.force) await refuseToOverwrite(opts.out);
  try {
    const bundle = generateCertificates({
      service: opts.service,
      namespace: opts.namespace,
      extraSans: opts.san,
      caValidityDays,
      leafValidityDays,
      now,
    });
    let paths: Awaited<ReturnType<typeof writeCertificateFiles>>;
    try {
      paths = await writeCertificateFiles(opts.out, bundle);
    } catch (err) {
      // The files could not be written: an I/O error, not a usage error.
      if (err instanceof CertificateError) throw new CliError(err.message, ExitCode.Input);
      throw err;
    }
    const ca = describeCertificate(bundle.ca.certPem);
    const serving = describeCertificate(bundle.serving.certPem);
    const sans = [...serving.dnsNames.map((name) => `DNS:${name}`), ...serving.ipAddresses.map((ip) => `IP:${ip}`)];
    return [
      `wrote ${paths.caCert} (CA certificate, valid until ${ca.notAfter.toISOString()})`,
      `wrote ${paths.caKey} (CA private key, mode 0600: keep it secret)`,
      `wrote ${paths.cert} (serving certificate for ${serving.subject}, valid until ${serving.notAfter.toISOString()})`,
      `wrote ${paths.key} (serving private key, mode 0600)`,
      `SANs: ${sans.join(', ')}`,
      `Use: kubectl -n ${opts.namespace} create secret tls ${opts.service}-tls --cert=${paths.cert} --key=${paths.key}, and set the webhook's caBundle to the output of: base64 -w0 ${paths.caCert}`,
      '',
    ].join('\n');
  } catch (err) {
    if (err instanceof CertificateError) throw new CliError(err.message, 2);
    throw err;
  }
}

export function registerCertsCommand(program: Command): void {
  const certs = program.command('certs').description('TLS certificates for the webhook');
  certs
    .command('generate')
    .description('create a CA and a serving certificate for the webhook Service (ca.crt, ca.key, tls.crt, tls.key)')
    .requiredOption('--service <name>', 'name of the webhook Service')
    .requiredOption('--namespace <name>', 'namespace of the webhook Service')
    .option('--san <dns-or-ip>', 'extra subject alternative name, DNS name or IP address (repeatable)', collect, [] as string[])
    .requiredOption('--out <dir>', 'directory to write the files into (created when missing)')
    .option('--ca-days <n>', 'CA validity in days (default 3650)')
    .option('--leaf-days <n>', 'serving certificate validity in days (default 30)')
    .option('--force', 'replace certificate files already in --out')
    .action(async (opts: CertsGenerateOptions) => {
      const report = await runCertsGenerate(opts);
      const writeOut = program.configureOutput().writeOut ?? ((text: string) => process.stdout.write(text));
      writeOut(report);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseDays(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) {
    throw new CliError(`${flag} must be a whole number of days, got ${JSON.stringify(value)}`, 2);
  }
  return Number(value.trim());
}

async function refuseToOverwrite(dir: string): Promise<void> {
  const present: string[] = [];
  for (const name of Object.values(CertFileNames)) {
    const exists = await access(join(dir, name)).then(
      () => true,
      () => false,
    );
    if (exists) present.push(name);
  }
  if (present.length > 0) {
    throw new CliError(
      `${dir} already holds ${present.join(', ')}; pass --force to replace them (a new CA is no longer trusted by a caBundle made from the old one), or choose another --out`,
      2,
    );
  }
}
