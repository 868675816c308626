import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { trackForDrain } from './drainServer.js';
import type { ServerDrain } from './drainServer.js';

interface Harness {
  server: http.Server;
  port: number;
  tracked: ServerDrain;
  /** Answers held back until released, by request path. */
  release: Map<string, () => void>;
  arrived: (path: string) => Promise<void>;
}

/** A server that answers "/hold/..." only when the test releases it, and everything else at once after reading the body. */
async function start(): Promise<Harness> {
  const release = new Map<string, () => void>();
  const waiting = new Map<string, () => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = (): void => void res.end(`got ${Buffer.concat(chunks).length} bytes`);
      if (req.url?.startsWith('/hold/')) {
        release.set(req.url, answer);
        waiting.get(req.url)?.();
      } else {
        answer();
      }
    });
  });
  const tracked = trackForDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const arrived = (path: string): Promise<void> => (release.has(path) ? Promise.resolve() : new Promise((resolve) => waiting.set(path, resolve)));
  return { server, port: (server.address() as AddressInfo).port, tracked, release, arrived };
}

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

function request(port: number, path: string, agent: http.Agent | false = false, body?: { first: string; rest: Promise<string> }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: body ? 'POST' : 'GET', agent }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text }));
    });
    req.on('error', reject);
    if (body) {
      req.write(body.first);
      void body.rest.then((rest) => req.end(rest));
    } else {
      req.end();
    }
  });
}

let h: Harness;
beforeEach(async () => {
  h = await start();
});
afterEach(() => {
  h.server.closeAllConnections();
  h.server.close();
});

test('requests in flight when the drain begins finish, with Connection: close', async () => {
  const held = request(h.port, '/hold/a');
  await h.arrived('/hold/a');
  expect(h.tracked.inFlight()).toBe(1);
  const drained = h.tracked.drain({ delayMs: 0, graceMs: 5000 });
  h.release.get('/hold/a')!();
  expect(await held).toMatchObject({ status: 200, connection: 'close', body: 'got 0 bytes' });
  expect(await drained).toEqual({ unfinished: 0 });
});

test('during the delay the server still accepts, answering with Connection: close; afterwards it refuses', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const before = await request(h.port, '/', agent);
  expect(before.connection).toBe('keep-alive');
  const drained = h.tracked.drain({ delayMs: 300, graceMs: 1000 });
  // The kept-alive connection and a new one are both answered, and told to close.
  expect(await request(h.port, '/', agent)).toMatchObject({ status: 200, connection: 'close' });
  expect(await request(h.port, '/')).toMatchObject({ status: 200, connection: 'close' });
  await drained;
  await expect(request(h.port, '/')).rejects.toThrow(/ECONNREFUSED/);
  agent.destroy();
});

test('an upload still arriving when the drain begins is received whole and answered', async () => {
  let sendRest: (rest: string) => void = () => {};
  const rest = new Promise<string>((resolve) => (sendRest = resolve));
  const upload = request(h.port, '/', false, { first: 'x'.repeat(1000), rest });
  // The server has the request (headers and the first part of the body) before the drain begins.
  while (h.tracked.inFlight() === 0) await new Promise((resolve) => setImmediate(resolve));
  const drained = h.tracked.drain({ delayMs: 0, graceMs: 5000 });
  setTimeout(() => sendRest('y'.repeat(1000)), 200);
  expect(await upload).toMatchObject({ status: 200, body: 'got 2000 bytes' });
  expect(await drained).toEqual({ unfinished: 0 });
});

test('requests still unanswered when the grace period ends are counted and their connections closed', async () => {
  const held = request(h.port, '/hold/b');
  await h.arrived('/hold/b');
  expect(await h.tracked.drain({ delayMs: 0, graceMs: 100 })).toEqual({ unfinished: 1 });
  await expect(held).rejects.toThrow(/socket hang up|ECONNRESET/);
});
