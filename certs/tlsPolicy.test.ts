/**
 * The TLS policy over real handshakes on 127.0.0.1: each refused class of client (old protocol,
 * RSA key exchange, CBC, SHA-1, DHE) is first shown to connect to a permissive control server, so
 * a refusal by the policy is the policy's doing and not the client's inability to offer it.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { createCertificateAuthority, issueServingCertificate } from './issue.js';
import { DEFAULT_TLS_CIPHERS, DEFAULT_TLS_POLICY, TLS12_ECDHE_AEAD_SUITES, TLS13_SUITES, TlsMinVersion, tlsPolicyOptions, tlsPolicyProblem } from './tlsPolicy.js';

const ca = createCertificateAuthority({ commonName: 'tls-policy-test-ca' });
const serving = issueServingCertificate(ca, { service: 'mps-injector', namespace: 'tls-test', extraSans: ['127.0.0.1'] });

const servers: tls.Server[] = [];

async function listen(options: TlsOptions): Promise<number> {
  const server = tls.createServer({ cert: serving.certPem, key: serving.keyPem, ...options }, (socket) => socket.end('ok'));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

afterAll(() => {
  for (const server of servers) server.close();
});

type Handshake = { ok: true; protocol: string | null; cipher: string } | { ok: false; error: string };

function handshake(port: number, options: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: undefined, ...options }, () => {
      resolve({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }));
  });
}

let policyPort: number;
let controlPort: number;
let tls13OnlyPort: number;

beforeAll(async () => {
  policyPort = await listen(tlsPolicyOptions(DEFAULT_TLS_POLICY));
  tls13OnlyPort = await listen(tlsPolicyOptions({ ...DEFAULT_TLS_POLICY, minVersion: TlsMinVersion.Tls13 }));
  // Accepts everything OpenSSL can still do, old protocols and weak suites included.
  controlPort = await listen({ minVersion: 'TLSv1', ciphers: 'ALL:@SECLEVEL=0', dhparam: 'auto' });
});

const tls12 = (ciphers: string): ConnectionOptions => ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers });

const refused: [string, ConnectionOptions][] = [
  ['TLS 1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }],
  ['TLS 1.1', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }],
  ['TLS 1.2, RSA key exchange (no forward secrecy), AES-GCM', tls12('AES128-GCM-SHA256')],
  ['TLS 1.2, RSA key exchange, AES-256-GCM', tls12('AES256-GCM-SHA384')],
  ['TLS 1.2, ECDHE with CBC and SHA-256', tls12('ECDHE-RSA-AES128-SHA256')],
  ['TLS 1.2, ECDHE with CBC and SHA-384', tls12('ECDHE-RSA-AES256-SHA384')],
  ['TLS 1.2, ECDHE with CBC and SHA-1', tls12('ECDHE-RSA-AES128-SHA')],
  ['TLS 1.2, RSA key exchange with CBC and SHA-1', tls12('AES128-SHA')],
  ['TLS 1.2, finite-field DHE with AES-GCM', tls12('DHE-RSA-AES128-GCM-SHA256')],
];

describe.each(refused)('refused: %s', (_what, client) => {
  test('the control server accepts this client, the policy refuses it', async () => {
    expect(await handshake(controlPort, client)).toMatchObject({ ok: true });
    expect(await handshake(policyPort, client)).toMatchObject({ ok: false });
  });
});

const rsaTls12Suites = TLS12_ECDHE_AEAD_SUITES.filter((suite) => suite.startsWith('ECDHE-RSA-'));

test.each(rsaTls12Suites)('accepted: TLS 1.2 %s (the serving key is RSA)', async (suite) => {
  expect(await handshake(policyPort, tls12(suite))).toEqual({ ok: true, protocol: 'TLSv1.2', cipher: suite });
});

test.each(TLS13_SUITES)('accepted: TLS 1.3 %s', async (suite) => {
  expect(await handshake(policyPort, { minVersion: 'TLSv1.3', ciphers: suite })).toEqual({ ok: true, protocol: 'TLSv1.3', cipher: suite });
});

test('a default Node client gets TLS 1.3', async () => {
  expect(await handshake(policyPort, {})).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
});

test('tlsMinVersion TLSv1.3 refuses a TLS 1.2 client that the default policy serves', async () => {
  const client = tls12('ECDHE-RSA-AES128-GCM-SHA256');
  expect(await handshake(policyPort, client)).toMatchObject({ ok: true });
  expect(await handshake(tls13OnlyPort, client)).toMatchObject({ ok: false });
  expect(await handshake(tls13OnlyPort, {})).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
});

describe('the default cipher list', () => {
  test('names only ECDHE+AEAD TLS 1.2 suites and the TLS 1.3 suites', () => {
    for (const suite of DEFAULT_TLS_CIPHERS.split(':')) {
      expect(suite.startsWith('TLS_') || /^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/.test(suite)).toBe(true);
    }
  });

  test('a list OpenSSL cannot use is reported with the setting and the default', () => {
    expect(tlsPolicyProblem(DEFAULT_TLS_POLICY)).toBeNull();
    const problem = tlsPolicyProblem({ minVersion: TlsMinVersion.Tls12, ciphers: 'NOT-A-SUITE' });
    expect(problem).toContain('server.tlsCiphers "NOT-A-SUITE" is not a cipher list OpenSSL can use');
    expect(problem).toContain(DEFAULT_TLS_CIPHERS);
  });
});
