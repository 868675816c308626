import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, test } from '@jest/globals';
import express from 'express';
import { expressMessageClasses } from './expressMessageClasses.js';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** Serve `app` through the message classes; report the prototypes requests and responses had before express saw them. */
async function serve(app: express.Express): Promise<{ url: string; seen: { request: boolean; response: boolean }[] }> {
  const seen: { request: boolean; response: boolean }[] = [];
  const server = http.createServer({ ...expressMessageClasses(app) }, app);
  server.prependListener('request', (req, res) => {
    seen.push({ request: Object.getPrototypeOf(req) === app.request, response: Object.getPrototypeOf(res) === app.response });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test('requests and responses reach express already carrying the app prototypes', async () => {
  const app = express();
  app.post('/echo', express.json(), (req, res) => res.status(201).json({ got: req.body as unknown, path: req.path }));
  const { url, seen } = await serve(app);
  const res = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: 1 }) });
  expect(res.status).toBe(201);
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(await res.json()).toEqual({ got: { a: 1 }, path: '/echo' });
  expect(seen).toEqual([{ request: true, response: true }]);
});

test('express helpers and Node stream behaviour work on instances built by the classes', async () => {
  const app = express();
  app.get('/stream', (req, res) => {
    expect(req).toBeInstanceOf(http.IncomingMessage);
    expect(res).toBeInstanceOf(http.ServerResponse);
    res.type('text/plain');
    res.write('a');
    res.end(req.get('x-tail') ?? '');
  });
  const { url } = await serve(app);
  const res = await fetch(`${url}/stream`, { headers: { 'x-tail': 'b' } });
  expect(await res.text()).toBe('ab');
  const missing = await fetch(`${url}/nowhere`);
  expect(missing.status).toBe(404);
});

test('each app gets classes for its own prototypes', () => {
  const one = express();
  const two = express();
  const a = expressMessageClasses(one);
  const b = expressMessageClasses(two);
  expect(a.IncomingMessage?.prototype).toBe(one.request);
  expect(b.ServerResponse?.prototype).toBe(two.response);
});
