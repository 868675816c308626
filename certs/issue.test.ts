import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import {
  CertificateError,
  createCertificateAuthority,
  describeCertificate,
  generateCertificates,
  issueServingCertificate,
  keyMatchesCertificate,
  needsRenewal,
  serviceDnsNames,
  validateKeyPair,
} from './issue.js';

const NOW = new Date('2030-03-01T12:00:00.000Z');
const DAY_MS = 24 * 60 * 60 * 1000;

// Key generation is the slow part; share one CA and one bundle across read-only tests.
const bundle = generateCertificates({
  service: 'mps-injector',
  namespace: 'gpu-system',
  extraSans: ['webhook.example.com', '10.96.0.15', 'fd00::a'],
  caValidityDays: 365,
  leafValidityDays: 30,
  now: NOW,
});

describe('serviceDnsNames', () => {
  test('lists the four in-cluster names of a Service', () => {
    expect(serviceDnsNames('hook', 'ns1')).toEqual(['hook', 'hook.ns1', 'hook.ns1.svc', 'hook.ns1.svc.cluster.local']);
  });

  test.each([
    ['', 'ns'],
    ['Hook', 'ns'],
    ['hook_1', 'ns'],
    ['hook', '-ns'],
    ['a'.repeat(64), 'ns'],
  ])('rejects service %j namespace %j with a CertificateError', (service, namespace) => {
    expect(() => serviceDnsNames(service, namespace)).toThrow(CertificateError);
  });
});

describe('generateCertificates', () => {
  test('the serving certificate carries exactly the service names, extra DNS names and IP addresses', () => {
    const serving = describeCertificate(bundle.serving.certPem);
    expect(serving.dnsNames).toEqual([
      'mps-injector',
      'mps-injector.gpu-system',
      'mps-injector.gpu-system.svc',
      'mps-injector.gpu-system.svc.cluster.local',
      'webhook.example.com',
    ]);
    expect(serving.ipAddresses).toEqual(['10.96.0.15', 'fd00::a']);
    expect(serving.subject).toBe('CN=mps-injector.gpu-system.svc');
    expect(serving.isCa).toBe(false);
  });

  test('the serving certificate chains to the CA', () => {
    const ca = new X509Certificate(bundle.ca.certPem);
    const leaf = new X509Certificate(bundle.serving.certPem);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);

    const store = forge.pki.createCaStore([bundle.ca.certPem]);
    expect(forge.pki.verifyCertificateChain(store, [forge.pki.certificateFromPem(bundle.serving.certPem)], { validityCheckDate: NOW })).toBe(true);
  });

  test('the serving certificate does not verify against a different CA', () => {
    const otherCa = new X509Certificate(createCertificateAuthority({ now: NOW }).certPem);
    const leaf = new X509Certificate(bundle.serving.certPem);
    expect(leaf.checkIssued(otherCa)).toBe(false);
    expect(leaf.verify(otherCa.publicKey)).toBe(false);
  });

  test('the CA is a CA that may sign certificates; the leaf is for TLS servers', () => {
    const ca = forge.pki.certificateFromPem(bundle.ca.certPem);
    expect(ca.getExtension('basicConstraints')).toMatchObject({ cA: true });
    expect(ca.getExtension('keyUsage')).toMatchObject({ keyCertSign: true });
    expect(describeCertificate(bundle.ca.certPem).isCa).toBe(true);

    const leaf = forge.pki.certificateFromPem(bundle.serving.certPem);
    expect(leaf.getExtension('basicConstraints')).toMatchObject({ cA: false });
    expect(leaf.getExtension('keyUsage')).toMatchObject({ digitalSignature: true, keyEncipherment: true, keyCertSign: false });
    expect(leaf.getExtension('extKeyUsage')).toMatchObject({ serverAuth: true });
    expect(leaf.siginfo.algorithmOid).toBe(forge.pki.oids['sha256WithRSAEncryption']);
    expect((leaf.publicKey as forge.pki.rsa.PublicKey).n.bitLength()).toBe(2048);
  });

  test('the serving certificate runs from just before now for the requested number of days', () => {
    expect(bundle.servingNotAfter.toISOString()).toBe(new Date(NOW.getTime() + 30 * DAY_MS).toISOString());
    const serving = describeCertificate(bundle.serving.certPem);
    expect(serving.notAfter.getTime()).toBe(bundle.servingNotAfter.getTime());
    expect(serving.notBefore.getTime()).toBeLessThan(NOW.getTime());
    expect(NOW.getTime() - serving.notBefore.getTime()).toBeLessThanOrEqual(10 * 60 * 1000);
    expect(describeCertificate(bundle.ca.certPem).notAfter.toISOString()).toBe(new Date(NOW.getTime() + 365 * DAY_MS).toISOString());
  });

  test('rejects a SAN that is neither a DNS name nor an IP before generating keys', () => {
    expect(() => generateCertificates({ service: 's', namespace: 'n', extraSans: ['not a name'] })).toThrow(/extra SAN "not a name"/);
    expect(() => generateCertificates({ service: '', namespace: 'n' })).toThrow(CertificateError);
    expect(() => generateCertificates({ service: 's', namespace: 'n', leafValidityDays: 0 })).toThrow(/whole number of days/);
  });
});

describe('issueServingCertificate', () => {
  const ca = createCertificateAuthority({ commonName: 'test-ca', validityDays: 10, now: NOW });

  test('serials are random, positive and at least 16 bytes, and differ between calls', () => {
    const serials = [ca, ...[1, 2, 3].map(() => issueServingCertificate(ca, { service: 's', namespace: 'n', now: NOW }))].map(
      (pair) => describeCertificate(pair.certPem).serialHex,
    );
    expect(new Set(serials).size).toBe(serials.length);
    for (const serial of serials) {
      expect(serial.length).toBeGreaterThanOrEqual(32);
      expect(Number.parseInt(serial.slice(0, 2), 16)).toBeLessThan(0x80);
      expect(Number.parseInt(serial.slice(0, 2), 16)).toBeGreaterThan(0);
    }
  });

  test('names the issuing CA and de-duplicates extra SANs', () => {
    const leaf = issueServingCertificate(ca, {
      service: 's',
      namespace: 'n',
      extraSans: ['s.n.svc', 'Extra.Example', 'extra.example', '*.apps.example', '127.0.0.1', '127.0.0.1'],
      now: NOW,
    });
    const described = describeCertificate(leaf.certPem);
    expect(described.dnsNames).toEqual(['s', 's.n', 's.n.svc', 's.n.svc.cluster.local', 'extra.example', '*.apps.example']);
    expect(described.ipAddresses).toEqual(['127.0.0.1']);
    expect(new X509Certificate(leaf.certPem).issuer).toBe('CN=test-ca');
  });

  test('never outlives its CA', () => {
    const leaf = issueServingCertificate(ca, { service: 's', namespace: 'n', validityDays: 90, now: NOW });
    expect(leaf.notAfter.getTime()).toBe(describeCertificate(ca.certPem).notAfter.getTime());
  });

  test('refuses to sign with an expired CA, a non-CA or a mismatched CA key', () => {
    const later = new Date(NOW.getTime() + 11 * DAY_MS);
    expect(() => issueServingCertificate(ca, { service: 's', namespace: 'n', now: later })).toThrow(/CA certificate is valid from .* not at/);

    const leaf = issueServingCertificate(ca, { service: 's', namespace: 'n', now: NOW });
    expect(() => issueServingCertificate(leaf, { service: 's', namespace: 'n', now: NOW })).toThrow(/not a certificate authority/);

    const otherCa = createCertificateAuthority({ now: NOW });
    expect(() => issueServingCertificate({ certPem: ca.certPem, keyPem: otherCa.keyPem }, { service: 's', namespace: 'n', now: NOW })).toThrow(
      /private key in the CA private key does not belong/,
    );
  });
});

describe('needsRenewal', () => {
  const { notBefore, notAfter } = describeCertificate(bundle.serving.certPem);
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const at = (ms: number) => new Date(notBefore.getTime() + ms);

  test('turns true exactly when the fraction of the lifetime has passed', () => {
    const renewAt = lifetime * (2 / 3);
    expect(needsRenewal(bundle.serving.certPem, at(0), 2 / 3)).toBe(false);
    expect(needsRenewal(bundle.serving.certPem, at(Math.ceil(renewAt) - 1), 2 / 3)).toBe(false);
    expect(needsRenewal(bundle.serving.certPem, at(Math.ceil(renewAt)), 2 / 3)).toBe(true);
    expect(needsRenewal(bundle.serving.certPem, at(lifetime / 2), 0.5)).toBe(true);
    expect(needsRenewal(bundle.serving.certPem, at(lifetime / 2 - 1), 0.5)).toBe(false);
  });

  test('is true at and after expiry, also for fraction 1', () => {
    expect(needsRenewal(bundle.serving.certPem, at(lifetime - 1), 1)).toBe(false);
    expect(needsRenewal(bundle.serving.certPem, notAfter, 1)).toBe(true);
    expect(needsRenewal(bundle.serving.certPem, new Date(notAfter.getTime() + DAY_MS), 0.9)).toBe(true);
  });

  test.each([0, -0.5, 1.5, Number.NaN])('rejects fraction %p', (fraction) => {
    expect(() => needsRenewal(bundle.serving.certPem, NOW, fraction)).toThrow(CertificateError);
  });
});

describe('keyMatchesCertificate and validateKeyPair', () => {
  test('true for an issued pair, false for a key from another pair', () => {
    expect(keyMatchesCertificate(bundle.serving)).toBe(true);
    expect(keyMatchesCertificate(bundle.ca)).toBe(true);
    expect(keyMatchesCertificate({ certPem: bundle.serving.certPem, keyPem: bundle.ca.keyPem })).toBe(false);
  });

  test('works for key types other than RSA (a pair mounted from elsewhere)', () => {
    const ecKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(keyMatchesCertificate({ certPem: bundle.serving.certPem, keyPem: ecKey })).toBe(false);
  });

  test('keyMatchesCertificate is false for an unreadable half', () => {
    expect(keyMatchesCertificate({ certPem: 'garbage', keyPem: bundle.serving.keyPem })).toBe(false);
    expect(keyMatchesCertificate({ certPem: bundle.serving.certPem, keyPem: 'garbage' })).toBe(false);
  });

  test('validateKeyPair throws a CertificateError naming the unreadable or mismatched part', () => {
    expect(() => validateKeyPair({ certPem: 'garbage', keyPem: bundle.serving.keyPem })).toThrow(/certificate is not a PEM certificate/);
    expect(() => validateKeyPair({ certPem: bundle.serving.certPem, keyPem: 'garbage' })).toThrow(/private key is not a readable/);
    const truncated = bundle.serving.certPem.slice(0, 200) + '\n-----END CERTIFICATE-----\n';
    expect(() => validateKeyPair({ certPem: truncated, keyPem: bundle.serving.keyPem }, { cert: '/tls/tls.crt', key: '/tls/tls.key' })).toThrow(
      /\/tls\/tls\.crt holds a PEM block that is not a valid X\.509 certificate/,
    );
    expect(() => validateKeyPair({ certPem: bundle.serving.certPem, keyPem: bundle.ca.keyPem }, { cert: '/tls/tls.crt', key: '/tls/tls.key' })).toThrow(
      'the private key in /tls/tls.key does not belong to the certificate in /tls/tls.crt',
    );
  });
});
