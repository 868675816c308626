/**
 * The README's "Day 2" section shows real output of status, explain and doctor: this test runs
 * them against a sample cluster in the stand-in API server and checks the README still shows
 * exactly that. UPDATE_README=1 writes the fresh output into the README instead.
 */
import { readFile, writeFile } from 'node:fs/promises';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { generateCertificates } from '../certs/issue.js';
import { StandInApiServer } from '../testing/standInApiServer.js';
import { createGpuCluster } from '../testing/standInGpuCluster.js';
import { runDoctor } from './doctorCommand.js';
import { runExplain } from './explainCommand.js';
import { runStatus } from './statusCommand.js';

const README = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'README.md');
const NOW = Date.parse('2026-03-01T12:00:00Z');

/** Replace the fenced block after `<!-- day2:NAME -->` with the text. */
function withBlock(readme: string, name: string, command: string, output: string): string {
  const marker = `<!-- day2:${name} -->`;
  const start = readme.indexOf(marker);
  if (start < 0) throw new Error(`README.md lacks ${marker}`);
  const fenceStart = readme.indexOf('```', start);
  const fenceEnd = readme.indexOf('```\n', readme.indexOf('\n', fenceStart) + 1);
  return `${readme.slice(0, fenceStart)}\`\`\`console\n$ ${command}\n${output}${readme.slice(fenceEnd)}`;
}

test('the README shows what status, explain and doctor print', async () => {
  const standIn = await StandInApiServer.start();
  const certificates = generateCertificates({ service: 'mps-injector', namespace: 'mps-injector', now: new Date(NOW - 86_400_000) });
  const cluster = await createGpuCluster(standIn, { nowMs: NOW, certificates, withoutMpsDaemon: ['gpu-node-2'] });
  const server = tls.createServer({ cert: certificates.serving.certPem, key: certificates.serving.keyPem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const deps = { kubeConfig: standIn.kubeConfig(), now: () => NOW, exporterUrlFor: cluster.exporterUrlFor };
    const status = await runStatus({}, deps);
    const explain = await runExplain('ml/llm-0', {}, deps);
    const doctor = await runDoctor({ webhookAddress: `127.0.0.1:${port}` }, deps);
    expect(doctor.exitCode).toBe(1);
    const portless = (text: string): string => text.replaceAll(`127.0.0.1:${port}`, '127.0.0.1:8443');

    const readme = await readFile(README, 'utf8');
    let fresh = withBlock(readme, 'status', 'kubectl mps status', status.stdout);
    fresh = withBlock(fresh, 'explain', 'kubectl mps explain -n ml llm-0', explain.stdout);
    fresh = withBlock(fresh, 'doctor', 'kubectl mps doctor --webhook-address 127.0.0.1:8443', portless(doctor.stdout));
    if (process.env.UPDATE_README === '1') await writeFile(README, fresh);
    else expect(readme).toBe(fresh);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await cluster.stop();
    await standIn.stop();
  }
});
