/**
 * The layout's import directions (docs/adr/0011-layout.md) are enforced by lint: a pure folder
 * that reaches for I/O, or a folder that imports one it may not, fails `npm run lint`.
 */
import path from 'node:path';
import { ESLint } from 'eslint';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const eslint = new ESLint({ cwd: repoRoot });

async function problems(file: string, text: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath: path.join(repoRoot, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

test.each([
  ['placement/probe.ts', "import { KubeConfig } from '@kubernetes/client-node';\nexport const k = KubeConfig;\n"],
  ['domain/probe.ts', "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n"],
  ['injector/probe.ts', "import express from 'express';\nexport const e = express;\n"],
  ['admission/probe.ts', "import type { KubeApis } from '../kube/kubeApis.js';\nexport type K = KubeApis;\n"],
  ['placement/probe.ts', "import type { ReservationLedger } from '../reservations/ledger.js';\nexport type L = ReservationLedger;\n"],
  ['webhook/probe.ts', "import { StandInApiServer } from '../testing/standInApiServer.js';\nexport const s = StandInApiServer;\n"],
  ['dcgm/probe.ts', "import { chooseSlot } from '../placement/chooseSlot.js';\nexport const c = chooseSlot;\n"],
])('%s: a forbidden import fails lint', async (file, text) => {
  expect((await problems(file, text)).length).toBeGreaterThan(0);
});

test.each([
  ['placement/probe.ts', "import type { GpuInventory } from '../domain/inventory.js';\nexport type I = GpuInventory;\n"],
  ['admission/probe.ts', "import { reserveSlot } from '../reservations/reserveSlot.js';\nexport const r = reserveSlot;\n"],
  ['kube/probe.ts', "import { KubeConfig } from '@kubernetes/client-node';\nexport const k = KubeConfig;\n"],
  ['bench/probe.ts', "import { StandInApiServer } from '../testing/standInApiServer.js';\nexport const s = StandInApiServer;\n"],
])('%s: an allowed import passes', async (file, text) => {
  expect(await problems(file, text)).toEqual([]);
});
