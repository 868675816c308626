/**
 * GpuSample[] -> dcgm-exporter style text exposition. Pure: no I/O.
 * Used by tests, the stand-in exporter, the benchmark and the simulator.
 *
 * Round trip: parseDcgmText(renderDcgmText(x)) gives x back for every rendered field, as
 * long as each GPU's memory total equals free + used + reserved (the exporter publishes no
 * total) and, without timestamps, the parse is given the samples' time as its scrape time.
 */
import type { GpuSample } from '../domain/inventory.js';
import { DcgmLabel, DcgmMetric } from './dcgmNames.js';

export interface RenderDcgmTextOptions {
  /** Host label: `Hostname` (released exporters, the default) or `hostname` (newer builds). */
  hostLabel?: 'Hostname' | 'hostname';
  /** Append each GPU's sampledAtMs to its lines. */
  withTimestamps?: boolean;
  /** Value of the DCGM_FI_DRIVER_VERSION label. */
  driverVersion?: string;
  /** Also render temperature, power and memory-copy families, as a default exporter does (the parser ignores them). */
  withDeviceExtras?: boolean;
}

interface Family {
  name: string;
  help: string;
  value: (gpu: GpuSample) => number | null;
}

const families: readonly Family[] = [
  { name: DcgmMetric.FbFree, help: 'Free frame buffer memory (in MiB).', value: (g) => g.memory?.freeMiB ?? null },
  { name: DcgmMetric.FbUsed, help: 'Used frame buffer memory (in MiB).', value: (g) => g.memory?.usedMiB ?? null },
  { name: DcgmMetric.FbReserved, help: 'Reserved frame buffer memory (in MiB).', value: (g) => g.memory?.reservedMiB ?? null },
  { name: DcgmMetric.GpuUtil, help: 'GPU utilisation (in %).', value: (g) => g.utilPercent },
  { name: DcgmMetric.SmActive, help: 'Ratio of cycles with at least one warp resident on an SM.', value: (g) => g.smActive },
  { name: DcgmMetric.GrEngineActive, help: 'Ratio of time the graphics engine was busy.', value: (g) => g.grEngineActive },
  { name: DcgmMetric.XidErrors, help: 'Number of the last XID error seen (0: none).', value: (g) => g.xid },
];

/** Plausible readings of families the parser ignores; they only make a scrape realistic. */
const deviceExtras: readonly Family[] = [
  { name: 'DCGM_FI_DEV_GPU_TEMP', help: 'GPU temperature (in C).', value: (g) => 26 + Math.round((g.utilPercent ?? 0) / 4) },
  { name: 'DCGM_FI_DEV_POWER_USAGE', help: 'Power draw (in W).', value: (g) => 65 + (g.utilPercent ?? 0) * 5 },
  { name: 'DCGM_FI_DEV_MEM_COPY_UTIL', help: 'Memory copy utilisation (in %).', value: (g) => Math.round((g.utilPercent ?? 0) / 2) },
];

/** A MIG GPU gets one instance series, so that the parse reads it back as MIG. */
const MIG_PROFILE = '7g.80gb';

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelBlock(pairs: ReadonlyArray<readonly [string, string]>): string {
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** The labels dcgm-exporter puts on every series of a GPU. */
function deviceLabels(gpu: GpuSample, hostLabel: string, driverVersion: string): Array<readonly [string, string]> {
  return [
    [DcgmLabel.Gpu, String(gpu.index)],
    [DcgmLabel.Uuid, gpu.uuid],
    [DcgmLabel.PciBusId, gpu.pciBusId ?? ''],
    [DcgmLabel.Device, `nvidia${gpu.index}`],
    [DcgmLabel.ModelName, gpu.model],
    [hostLabel, gpu.node],
    [DcgmLabel.DriverVersion, driverVersion],
  ];
}

/** The label block(s) of one GPU: one per pod on it (Kubernetes mapping), or one without pod labels. */
function gpuLabelBlocks(gpu: GpuSample, hostLabel: string, driverVersion: string): string[] {
  const device = deviceLabels(gpu, hostLabel, driverVersion);
  if (gpu.pods.length === 0) return [labelBlock(device)];
  return gpu.pods.map((p) =>
    labelBlock([
      ...device,
      [DcgmLabel.Container, p.container],
      [DcgmLabel.Namespace, p.namespace],
      [DcgmLabel.Pod, p.pod],
      [DcgmLabel.PodUid, ''],
    ]),
  );
}

/** Labels of a MIG instance series of a GPU. */
function migInstanceBlock(gpu: GpuSample, hostLabel: string, driverVersion: string): string {
  return labelBlock([
    ...deviceLabels(gpu, hostLabel, driverVersion),
    [DcgmLabel.MigProfile, MIG_PROFILE],
    [DcgmLabel.MigInstanceId, '0'],
  ]);
}

/** Render samples as one exporter's (or several concatenated exporters') /metrics text. */
export function renderDcgmText(gpus: readonly GpuSample[], opts: RenderDcgmTextOptions = {}): string {
  const hostLabel = opts.hostLabel ?? DcgmLabel.HostnameUpper;
  const driverVersion = opts.driverVersion ?? '580.105.08';
  const blocks = gpus.map((g) => gpuLabelBlocks(g, hostLabel, driverVersion));
  const suffix = (g: GpuSample): string => (opts.withTimestamps ? ` ${Math.round(g.sampledAtMs)}` : '');
  const out: string[] = [];

  const all = opts.withDeviceExtras ? [...deviceExtras, ...families] : families;
  for (const family of all) {
    const body: string[] = [];
    gpus.forEach((gpu, i) => {
      const value = family.value(gpu);
      if (value === null) return;
      for (const block of blocks[i] ?? []) body.push(`${family.name}${block} ${String(value)}${suffix(gpu)}`);
    });
    if (family.name === DcgmMetric.FbUsed) {
      for (const gpu of gpus) if (gpu.mig) body.push(`${family.name}${migInstanceBlock(gpu, hostLabel, driverVersion)} 0${suffix(gpu)}`);
    }
    if (body.length === 0) continue;
    out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`, ...body);
  }
  return `${out.join('\n')}\n`;
}
