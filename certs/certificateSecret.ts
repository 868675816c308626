/**
 * The self-managed certificate Secret: its layout, and what to change in it. Pure apart from
 * key generation (through certs/issue.ts).
 *
 * Secret (type kubernetes.io/tls) keys:
 *   tls.crt, tls.key   the serving pair every replica serves
 *   ca.crt, ca.key     the CA that signs serving certificates
 *   ca-bundle.crt      what the API server must trust: ca.crt, plus previous-ca.crt while a
 *                      CA rotation is in progress
 *   previous-ca.crt    the CA being retired; present until every live replica reports that
 *                      it serves a certificate signed by ca.crt
 */
import { X509Certificate } from 'node:crypto';
import { createCertificateAuthority, describeCertificate, issueServingCertificate, needsRenewal } from './issue.js';
import type { PemPair } from './issue.js';

export const CertSecretKey = {
  Cert: 'tls.crt',
  Key: 'tls.key',
  CaCert: 'ca.crt',
  CaKey: 'ca.key',
  CaBundle: 'ca-bundle.crt',
  PreviousCaCert: 'previous-ca.crt',
} as const;

export interface CertificateState {
  ca: PemPair;
  serving: PemPair;
  /** The CA being retired, or null. */
  previousCaCertPem: string | null;
}

export interface CertificateSettings {
  service: string;
  namespace: string;
  caValidityDays: number;
  leafValidityDays: number;
  renewAtFraction: number;
}

/** SHA-256 fingerprint of a PEM certificate ("AB:CD:..."). */
export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** The PEM bundle the API server must trust. */
export function caBundleOf(state: CertificateState): string {
  const current = state.ca.certPem.trim();
  if (state.previousCaCertPem === null || fingerprintOf(state.previousCaCertPem) === fingerprintOf(current)) return `${current}\n`;
  return `${current}\n${state.previousCaCertPem.trim()}\n`;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string | undefined): string | null => (text === undefined ? null : Buffer.from(text, 'base64').toString('utf8'));

/** Read the Secret's data (base64 values). Null when a required key is missing. */
export function decodeCertificateSecret(data: Record<string, string> | undefined): CertificateState | null {
  const get = (key: string): string | null => unb64(data?.[key]);
  const certPem = get(CertSecretKey.Cert);
  const keyPem = get(CertSecretKey.Key);
  const caCertPem = get(CertSecretKey.CaCert);
  const caKeyPem = get(CertSecretKey.CaKey);
  if (!certPem || !keyPem || !caCertPem || !caKeyPem) return null;
  return { ca: { certPem: caCertPem, keyPem: caKeyPem }, serving: { certPem, keyPem }, previousCaCertPem: get(CertSecretKey.PreviousCaCert) || null };
}

export function encodeCertificateSecretData(state: CertificateState): Record<string, string> {
  const data: Record<string, string> = {
    [CertSecretKey.Cert]: b64(state.serving.certPem),
    [CertSecretKey.Key]: b64(state.serving.keyPem),
    [CertSecretKey.CaCert]: b64(state.ca.certPem),
    [CertSecretKey.CaKey]: b64(state.ca.keyPem),
    [CertSecretKey.CaBundle]: b64(caBundleOf(state)),
  };
  if (state.previousCaCertPem !== null) data[CertSecretKey.PreviousCaCert] = b64(state.previousCaCertPem);
  return data;
}

/** What a Secret's certificates need. */
export const CertificateAction = {
  None: 'none',
  /** Issue a new serving certificate from the current CA. */
  RenewLeaf: 'renew-leaf',
  /** Create a new CA (keeping the old one trusted) and a serving certificate from it. */
  RotateCa: 'rotate-ca',
  /** The stored pair is unusable: start afresh. */
  Regenerate: 'regenerate',
} as const;
export type CertificateAction = (typeof CertificateAction)[keyof typeof CertificateAction];

export interface CertificatePlan {
  action: CertificateAction;
  /** Why, for the log. */
  reason: string;
}

/** Decide what the stored certificates need at `now`. */
export function planCertificates(state: CertificateState, settings: CertificateSettings, now: Date): CertificatePlan {
  let caX509: X509Certificate;
  let leafX509: X509Certificate;
  try {
    caX509 = new X509Certificate(state.ca.certPem);
    leafX509 = new X509Certificate(state.serving.certPem);
  } catch (err) {
    return { action: CertificateAction.Regenerate, reason: `stored certificates cannot be read (${(err as Error).message})` };
  }
  if (needsRenewal(state.ca.certPem, now, settings.renewAtFraction)) {
    return { action: CertificateAction.RotateCa, reason: `the CA expires ${describeCertificate(state.ca.certPem).notAfter.toISOString()}` };
  }
  if (!leafX509.checkIssued(caX509) || !leafX509.verify(caX509.publicKey)) {
    return { action: CertificateAction.RenewLeaf, reason: 'the serving certificate is not signed by the stored CA' };
  }
  const wanted = `${settings.service}.${settings.namespace}.svc`;
  if (!describeCertificate(state.serving.certPem).dnsNames.includes(wanted)) {
    return { action: CertificateAction.RenewLeaf, reason: `the serving certificate does not name ${wanted}` };
  }
  if (needsRenewal(state.serving.certPem, now, settings.renewAtFraction)) {
    return { action: CertificateAction.RenewLeaf, reason: `the serving certificate expires ${describeCertificate(state.serving.certPem).notAfter.toISOString()}` };
  }
  return { action: CertificateAction.None, reason: 'certificates are current' };
}

function issueLeaf(ca: PemPair, settings: CertificateSettings, now: Date): PemPair {
  const leaf = issueServingCertificate(ca, { service: settings.service, namespace: settings.namespace, validityDays: settings.leafValidityDays, now });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem };
}

/** A fresh CA and serving pair. */
export function freshCertificates(settings: CertificateSettings, now: Date): CertificateState {
  const ca = createCertificateAuthority({ validityDays: settings.caValidityDays, now });
  return { ca, serving: issueLeaf(ca, settings, now), previousCaCertPem: null };
}

/** Carry out a plan; returns the new state (the input when nothing is to be done). */
export function applyCertificatePlan(state: CertificateState, plan: CertificatePlan, settings: CertificateSettings, now: Date): CertificateState {
  switch (plan.action) {
    case CertificateAction.None:
      return state;
    case CertificateAction.RenewLeaf:
      return { ...state, serving: issueLeaf(state.ca, settings, now) };
    case CertificateAction.RotateCa: {
      const ca = createCertificateAuthority({ validityDays: settings.caValidityDays, now });
      return { ca, serving: issueLeaf(ca, settings, now), previousCaCertPem: state.ca.certPem };
    }
    case CertificateAction.Regenerate:
      return freshCertificates(settings, now);
  }
}
