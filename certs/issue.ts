/**
 * Certificate authority and serving certificate for the webhook's TLS endpoint.
 *
 * Issuing uses node-forge (RSA 2048, SHA-256). Reading and checking certificates uses
 * Node's own X.509 support, so a pair issued elsewhere (cert-manager, any key type)
 * can be described, checked and served as well. Pure apart from key and serial randomness.
 */
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateBundle {
  ca: PemPair;
  serving: PemPair;
  servingNotAfter: Date;
}

/** A certificate problem a person can act on; the message says what is wrong and what to do. */
export class CertificateError extends Error {
  override readonly name = 'CertificateError';
}

const RSA_BITS = 2048;
const DEFAULT_CA_COMMON_NAME = 'mps-injector-ca';
const DEFAULT_CA_VALIDITY_DAYS = 3650;
const DEFAULT_LEAF_VALIDITY_DAYS = 30;
const MAX_VALIDITY_DAYS = 36500;
/** notBefore is set this far in the past so nodes with a slightly slow clock accept a fresh certificate. */
const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** X.520 upper bound for a common name. */
const MAX_COMMON_NAME_LENGTH = 64;

const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The names under which a Service is reached inside the cluster, shortest first. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  requireKubernetesName(service, 'service');
  requireKubernetesName(namespace, 'namespace');
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

export function createCertificateAuthority(opts: { commonName?: string; validityDays?: number; now?: Date } = {}): PemPair {
  const commonName = (opts.commonName ?? DEFAULT_CA_COMMON_NAME).trim();
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME_LENGTH) {
    throw new CertificateError(
      `CA common name must be 1 to ${MAX_COMMON_NAME_LENGTH} characters, got ${JSON.stringify(opts.commonName)}; pass a short name such as "${DEFAULT_CA_COMMON_NAME}"`,
    );
  }
  const validityDays = requireValidityDays(opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS, 'CA validity');
  const now = requireDate(opts.now ?? new Date());

  const keys = forge.pki.rsa.generateKeyPair({ bits: RSA_BITS, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialHex();
  setValidity(cert, now, now.getTime() + validityDays * DAY_MS);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * Issue a serving certificate for `service` in `namespace`, signed by `ca`.
 * An extra SAN that is an IP literal becomes an iPAddress SAN, anything else a dNSName.
 * The certificate never outlives the CA that signed it.
 */
export function issueServingCertificate(
  ca: PemPair,
  opts: { service: string; namespace: string; extraSans?: string[]; validityDays?: number; now?: Date },
): PemPair & { notAfter: Date } {
  const defaultNames = serviceDnsNames(opts.service, opts.namespace);
  const { dnsNames, ipAddresses } = classifySans(defaultNames, opts.extraSans ?? []);
  const validityDays = requireValidityDays(opts.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS, 'serving certificate validity');
  const now = requireDate(opts.now ?? new Date());
  return signLeaf(ca, now, validityDays, `${opts.service}.${opts.namespace}.svc`, [
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))],
    },
  ]);
}

/**
 * A leaf certificate for `commonName` signed by `ca`: a fresh RSA key, a random serial, a life
 * that never outlives the CA, and the leaf extensions plus `usage` (extKeyUsage, SANs).
 */
function signLeaf(ca: PemPair, now: Date, validityDays: number, commonName: string, usage: object[]): PemPair & { notAfter: Date } {
  const { caCert, caKey } = readSigningCa(ca, now);
  const keys = forge.pki.rsa.generateKeyPair({ bits: RSA_BITS, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialHex();
  setValidity(cert, now, Math.min(now.getTime() + validityDays * DAY_MS, caCert.validity.notAfter.getTime()));
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    ...usage,
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyIdentifier(caCert) },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey), notAfter: cert.validity.notAfter };
}

/**
 * Issue a client certificate (extKeyUsage clientAuth) for `commonName`, signed by `ca`: what an
 * API server presents to a webhook that requires mutual TLS. Never outlives the CA.
 */
export function issueClientCertificate(
  ca: PemPair,
  opts: { commonName: string; validityDays?: number; now?: Date },
): PemPair & { notAfter: Date } {
  const commonName = opts.commonName.trim();
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME_LENGTH) {
    throw new CertificateError(`client certificate common name must be 1 to ${MAX_COMMON_NAME_LENGTH} characters, got ${JSON.stringify(opts.commonName)}; pass a short name such as "kube-apiserver"`);
  }
  const validityDays = requireValidityDays(opts.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS, 'client certificate validity');
  const now = requireDate(opts.now ?? new Date());
  return signLeaf(ca, now, validityDays, commonName, [{ name: 'extKeyUsage', clientAuth: true }]);
}

/** A fresh CA and a serving certificate signed by it. */
export function generateCertificates(opts: {
  service: string;
  namespace: string;
  extraSans?: string[];
  caValidityDays?: number;
  leafValidityDays?: number;
  now?: Date;
}): CertificateBundle {
  // Check the names before spending time on keys.
  serviceDnsNames(opts.service, opts.namespace);
  classifySans([], opts.extraSans ?? []);
  requireValidityDays(opts.leafValidityDays ?? DEFAULT_LEAF_VALIDITY_DAYS, 'serving certificate validity');
  const now = requireDate(opts.now ?? new Date());
  const ca = createCertificateAuthority({ validityDays: opts.caValidityDays, now });
  const serving = issueServingCertificate(ca, {
    service: opts.service,
    namespace: opts.namespace,
    extraSans: opts.extraSans,
    validityDays: opts.leafValidityDays,
    now,
  });
  return { ca, serving: { certPem: serving.certPem, keyPem: serving.keyPem }, servingNotAfter: serving.notAfter };
}

export interface CertificateDescription {
  subject: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
  isCa: boolean;
}

/** What a PEM certificate says about itself (first certificate of a chain). */
export function describeCertificate(certPem: string): CertificateDescription {
  const x509 = parseCertificate(certPem, 'certificate');
  const { dnsNames, ipAddresses } = readSubjectAltNames(x509);
  return {
    subject: x509.subject.split('\n').join(', '),
    dnsNames,
    ipAddresses,
    notBefore: parseOpenSslDate(x509.validFrom, 'notBefore'),
    notAfter: parseOpenSslDate(x509.validTo, 'notAfter'),
    serialHex: x509.serialNumber.toLowerCase(),
    isCa: x509.ca,
  };
}

/**
 * True once `renewAtFraction` of the certificate's lifetime (notBefore to notAfter) has
 * passed at `now`, and for an expired certificate.
 */
export function needsRenewal(certPem: string, now: Date, renewAtFraction: number): boolean {
  if (!Number.isFinite(renewAtFraction) || renewAtFraction <= 0 || renewAtFraction > 1) {
    throw new CertificateError(
      `renewal fraction must be above 0 and at most 1, got ${renewAtFraction}; use e.g. 0.67 to renew after two thirds of the lifetime`,
    );
  }
  const { notBefore, notAfter } = describeCertificate(certPem);
  const lifetimeMs = notAfter.getTime() - notBefore.getTime();
  const renewAtMs = notBefore.getTime() + lifetimeMs * renewAtFraction;
  return requireDate(now).getTime() >= Math.min(renewAtMs, notAfter.getTime());
}

/**
 * True when the private key belongs to the certificate's public key; false when they differ
 * or either PEM cannot be read (validateKeyPair says which and why).
 */
export function keyMatchesCertificate(pair: PemPair): boolean {
  try {
    validateKeyPair(pair);
    return true;
  } catch (err) {
    if (err instanceof CertificateError) return false;
    throw err;
  }
}

/**
 * Parse both halves of a pair and check they belong together; `labels` name where each came
 * from (file paths) in the error message. Returns the parsed certificate.
 */
export function validateKeyPair(pair: PemPair, labels: { cert: string; key: string } = { cert: 'certificate', key: 'private key' }): X509Certificate {
  const x509 = parseCertificate(pair.certPem, labels.cert);
  const key = parsePrivateKey(pair.keyPem, labels.key);
  if (!x509.checkPrivateKey(key)) {
    throw new CertificateError(
      `the private key in ${labels.key} does not belong to the certificate in ${labels.cert}; put the key that was issued together with this certificate there (both files must be replaced together)`,
    );
  }
  return x509;
}

function parseCertificate(certPem: string, label: string): X509Certificate {
  if (!certPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CertificateError(`${label} is not a PEM certificate (no "BEGIN CERTIFICATE" block); provide the certificate in PEM form`);
  }
  try {
    return new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateError(`${label} holds a PEM block that is not a valid X.509 certificate (${(err as Error).message}); replace it with an intact certificate`);
  }
}

function parsePrivateKey(keyPem: string, label: string): ReturnType<typeof createPrivateKey> {
  try {
    return createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateError(`${label} is not a readable unencrypted PEM private key (${(err as Error).message}); provide the key that matches the certificate, without a passphrase`);
  }
}

/** OpenSSL prints dates as "Jan  2 03:04:05 2030 GMT", which Date parses. */
function parseOpenSslDate(text: string, field: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    throw new CertificateError(`cannot read the certificate's ${field} date "${text}"; reissue the certificate`);
  }
  return date;
}

interface ForgeAltName {
  type: number;
  value?: string;
  ip?: string;
}
interface ForgeExtension {
  name?: string;
  altNames?: ForgeAltName[];
}
/** node-forge exports this parser but its type definitions omit it. */
const certificateExtensionsFromAsn1 = (
  forge.pki as unknown as { certificateExtensionsFromAsn1(node: forge.asn1.Asn1): ForgeExtension[] }
).certificateExtensionsFromAsn1;

/**
 * Subject alternative names read from the DER structure (Node only offers them as one
 * escaped string). Works for any key algorithm, since only the extensions are decoded.
 */
function readSubjectAltNames(x509: X509Certificate): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const root = forge.asn1.fromDer(forge.util.createBuffer(x509.raw.toString('binary')));
  const tbs = asn1Children(root)[0];
  const extensionsNode = tbs
    ? asn1Children(tbs).find((node) => node.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && node.type === 3)
    : undefined;
  if (!extensionsNode) return { dnsNames, ipAddresses };
  for (const extension of certificateExtensionsFromAsn1(extensionsNode)) {
    if (extension.name !== 'subjectAltName') continue;
    for (const altName of extension.altNames ?? []) {
      if (altName.type === 2 && altName.value !== undefined) dnsNames.push(altName.value);
      if (altName.type === 7 && altName.ip) ipAddresses.push(altName.ip);
    }
  }
  return { dnsNames, ipAddresses };
}

function asn1Children(node: forge.asn1.Asn1): forge.asn1.Asn1[] {
  return Array.isArray(node.value) ? node.value : [];
}

function readSigningCa(ca: PemPair, now: Date): { caCert: forge.pki.Certificate; caKey: forge.pki.rsa.PrivateKey } {
  const x509 = validateKeyPair(ca, { cert: 'the CA certificate', key: 'the CA private key' });
  if (!x509.ca) {
    throw new CertificateError('the CA certificate is not a certificate authority (basicConstraints cA is not set); sign with a CA created by "certs generate"');
  }
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(ca.certPem);
    caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  } catch (err) {
    throw new CertificateError(`the CA must use an RSA key to sign serving certificates (${(err as Error).message}); create a new CA with "certs generate"`);
  }
  if (now < caCert.validity.notBefore || now >= caCert.validity.notAfter) {
    throw new CertificateError(
      `the CA certificate is valid from ${caCert.validity.notBefore.toISOString()} to ${caCert.validity.notAfter.toISOString()}, not at ${now.toISOString()}; create a new CA and update the webhook's caBundle`,
    );
  }
  return { caCert, caKey };
}

/** The CA's own subject key identifier (as raw bytes) when it has one, else one derived from its key. */
function caKeyIdentifier(caCert: forge.pki.Certificate): string {
  const ski = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ski?.subjectKeyIdentifier) return forge.util.hexToBytes(ski.subjectKeyIdentifier);
  return caCert.generateSubjectKeyIdentifier().getBytes();
}

function setValidity(cert: forge.pki.Certificate, now: Date, notAfterMs: number): void {
  // X.509 times carry whole seconds.
  cert.validity.notBefore = new Date(Math.floor((now.getTime() - CLOCK_SKEW_ALLOWANCE_MS) / 1000) * 1000);
  cert.validity.notAfter = new Date(Math.floor(notAfterMs / 1000) * 1000);
}

/**
 * A positive serial of 17 bytes: one leading byte in 0x40..0x7f (positive, minimal DER
 * encoding) followed by 16 random bytes.
 */
function randomSerialHex(): string {
  const bytes = randomBytes(17);
  bytes[0] = 0x40 | ((bytes[0] ?? 0) & 0x3f);
  return bytes.toString('hex');
}

function requireKubernetesName(name: string, what: 'service' | 'namespace'): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 63 || !RFC1123_LABEL.test(name)) {
    throw new CertificateError(
      `${what} name ${JSON.stringify(name)} is not a valid Kubernetes name (1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit); pass the ${what === 'service' ? "webhook Service's name" : "webhook's namespace"}`,
    );
  }
}

function requireValidityDays(days: number, what: string): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new CertificateError(`${what} must be a whole number of days from 1 to ${MAX_VALIDITY_DAYS}, got ${days}`);
  }
  return days;
}

function requireDate(date: Date): Date {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new CertificateError(`"now" must be a valid Date, got ${String(date)}`);
  }
  return date;
}

/**
 * Split extra SANs into DNS names and IP addresses, after the default names, in the order
 * given and without duplicates. DNS names are lower-cased; a leading "*." wildcard is allowed.
 */
function classifySans(defaultNames: string[], extraSans: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames = [...defaultNames];
  const ipAddresses: string[] = [];
  for (const raw of extraSans) {
    const san = typeof raw === 'string' ? raw.trim() : '';
    if (isIP(san) !== 0) {
      if (!ipAddresses.includes(san)) ipAddresses.push(san);
      continue;
    }
    const name = san.toLowerCase();
    if (!isDnsName(name)) {
      throw new CertificateError(
        `extra SAN ${JSON.stringify(raw)} is neither an IP address nor a DNS name (labels of lowercase letters, digits and '-', optionally starting with "*."); fix or drop it`,
      );
    }
    if (!dnsNames.includes(name)) dnsNames.push(name);
  }
  return { dnsNames, ipAddresses };
}

function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((label, index) => (index === 0 && label === '*' && labels.length > 1) || (label.length <= 63 && RFC1123_LABEL.test(label)));
}
