/**
 * What the webhook's TLS listener accepts: protocol versions and cipher suites.
 *
 * The default is Mozilla's "intermediate" server profile without its finite-field DHE suites:
 * TLS 1.3 (every suite is AEAD with forward secrecy), plus TLS 1.2 with ECDHE key exchange and
 * AEAD ciphers only. Refused: TLS 1.0 and 1.1, RSA key exchange (no forward secrecy), CBC modes,
 * SHA-1 MACs and DHE. Every API server from Kubernetes 1.0 on offers ECDHE-GCM suites.
 */
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/** The TLS 1.3 suites (OpenSSL names); all AEAD, all forward secret. */
export const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;

/** TLS 1.2 suites with ECDHE key exchange and an AEAD cipher (OpenSSL names), Mozilla's order. */
export const TLS12_ECDHE_AEAD_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

/** The default `server.tlsCiphers`: an OpenSSL cipher list, ':'-separated. */
export const DEFAULT_TLS_CIPHERS = [...TLS13_SUITES, ...TLS12_ECDHE_AEAD_SUITES].join(':');

export const TlsMinVersion = { Tls12: 'TLSv1.2', Tls13: 'TLSv1.3' } as const;
export type TlsMinVersion = (typeof TlsMinVersion)[keyof typeof TlsMinVersion];

export interface TlsPolicy {
  minVersion: TlsMinVersion;
  /** OpenSSL cipher list; TLS 1.3 suite names (TLS_...) and TLS 1.2 names may be mixed. */
  ciphers: string;
}

export const DEFAULT_TLS_POLICY: TlsPolicy = { minVersion: TlsMinVersion.Tls12, ciphers: DEFAULT_TLS_CIPHERS };

/**
 * The secure-context options of a policy. Pass them to the server and to every later
 * setSecureContext call: a context built without them falls back to Node's defaults, which
 * accept CBC, SHA-1 and non-forward-secret suites.
 */
export function tlsPolicyOptions(policy: TlsPolicy): Pick<SecureContextOptions, 'minVersion' | 'ciphers' | 'honorCipherOrder'> {
  // Client order, as Mozilla recommends when every suite offered is strong.
  return { minVersion: policy.minVersion, ciphers: policy.ciphers, honorCipherOrder: false };
}

/**
 * Why OpenSSL cannot use `policy`, in words that name the setting and the fix; null when it can.
 * (An unknown suite name is skipped by OpenSSL; a list with no usable suite is refused.)
 */
export function tlsPolicyProblem(policy: TlsPolicy): string | null {
  try {
    createSecureContext(tlsPolicyOptions(policy));
    return null;
  } catch (err) {
    return `server.tlsCiphers ${JSON.stringify(policy.ciphers)} is not a cipher list OpenSSL can use (${(err as Error).message}); give OpenSSL suite names separated by ':', e.g. the default ${DEFAULT_TLS_CIPHERS}`;
  }
}
