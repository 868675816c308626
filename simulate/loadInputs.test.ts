import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShippedKind, SimulationInputError, expandTraceList, loadCluster, loadTrace, resolveInput, shippedNames, writeTextFile } from './loadInputs.js';
import { ClusterError, expandCluster } from './cluster.js';
import { TraceError } from './trace.js';

describe('shipped inputs', () => {
  it('lists the shipped traces and clusters', () => {
    expect(shippedNames(ShippedKind.Traces)).toEqual(['burst', 'diurnal', 'llm', 'steady']);
    expect(shippedNames(ShippedKind.Clusters)).toEqual(expect.arrayContaining(['h100-4x8', 'h100-8x8', 'mixed']));
  });

  it('expands "all" and comma lists', () => {
    expect(expandTraceList('all')).toEqual(['burst', 'diurnal', 'llm', 'steady']);
    expect(expandTraceList(' burst, ./x.json ')).toEqual(['burst', './x.json']);
    expect(() => expandTraceList(' , ')).toThrow(SimulationInputError);
  });

  it('loads every shipped cluster and trace', async () => {
    for (const name of shippedNames(ShippedKind.Clusters)) expect(expandCluster(await loadCluster(name)).length).toBeGreaterThan(0);
    expect((await loadCluster('h100-4x8')).nodes[0]).toMatchObject({ count: 4, gpus: 8, memoryMiB: 81559 });
    for (const name of shippedNames(ShippedKind.Traces)) expect((await loadTrace(name)).name).toBe(name);
  });

  it('names the shipped choices when a name is unknown', () => {
    expect(() => resolveInput(ShippedKind.Traces, 'bursty')).toThrow(/no shipped trace named "bursty"; use one of burst, diurnal, llm, steady or pass the path/);
  });
});

describe('files given by path', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sim-inputs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a trace by path and explains a broken one', async () => {
    const good = join(dir, 'good.json');
    await writeTextFile(good, JSON.stringify({ name: 'g', pods: [{ id: 'a', arrivalS: 0, durationS: 1, memoryMiB: 1, computePercent: 1, priority: 'low', workload: 'w' }] }));
    expect((await loadTrace(good)).pods).toHaveLength(1);
    const bad = join(dir, 'bad.json');
    await writeTextFile(bad, JSON.stringify({ name: 'b', pods: [{ id: 'a', arrivalS: -1, durationS: 1, memoryMiB: 1, computePercent: 1, priority: 'urgent', workload: 'w' }] }));
    await expect(loadTrace(bad)).rejects.toThrow(TraceError);
    await expect(loadTrace(bad)).rejects.toThrow(/pods\.0\.arrivalS/);
    await expect(loadTrace(join(dir, 'missing.json'))).rejects.toThrow(/cannot read .*missing\.json/);
  });

  it('rejects a cluster whose node names collide', async () => {
    const file = join(dir, 'dup.json');
    await writeTextFile(file, JSON.stringify({ name: 'd', nodes: [{ name: 'n', gpus: 1, model: 'm', memoryMiB: 1 }, { name: 'n', gpus: 1, model: 'm', memoryMiB: 1 }] }));
    const cluster = await loadCluster(file);
    expect(() => expandCluster(cluster)).toThrow(ClusterError);
    expect(() => expandCluster(cluster)).toThrow(/node name "n" occurs twice/);
  });
});
