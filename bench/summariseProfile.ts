/**
 * Summarise a V8 CPU profile (`node --cpu-prof`) into a Markdown table of the frames with the
 * most self time. `npm run bench -- --profile` writes bench/profile.md with it; on its own:
 * `node .bench-dist/bench/summariseProfile.js <file.cpuprofile> [top]` prints the table.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of the .cpuprofile format (Chrome DevTools Profiler.Profile) read here. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameCost {
  frame: string;
  selfMs: number;
  share: number;
}

/** Where a frame lives, short: a package name, a project path, or node's own module. */
function whereOf(url: string, repoHint: string): string {
  if (url === '') return '';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  const at = clean.indexOf(repoHint);
  return at >= 0 ? clean.slice(at + repoHint.length) : clean;
}

/** Self time per frame (function, file, line), summed over the profile's nodes; the top `top`. */
export function topSelfFrames(profile: CpuProfile, top: number): { frames: FrameCost[]; totalMs: number } {
  const byNode = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byFrame = new Map<string, number>();
  let totalUs = 0;
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0;
    if (us === 0) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = whereOf(url, '/dist/');
    const frame = `${functionName || '(anonymous)'}${where === '' ? '' : ` ${where}:${lineNumber + 1}`}`;
    byFrame.set(frame, (byFrame.get(frame) ?? 0) + us);
  }
  const frames = [...byFrame.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([frame, us]) => ({ frame, selfMs: us / 1000, share: totalUs === 0 ? 0 : us / totalUs }));
  return { frames, totalMs: totalUs / 1000 };
}

/** The Markdown report: a title line, the sampled total, and the table; `threads` adds a section per worker thread's profile. */
export function summariseProfile(profile: CpuProfile, opts: { title: string; top: number; threads?: readonly CpuProfile[] }): string {
  const workers = opts.threads ?? [];
  return [
    `# Webhook CPU profile: top ${opts.top} self-time frames`,
    '',
    `Written by \`npm run bench -- --profile\`. ${opts.title}.`,
    '',
    ...threadSection('Main thread (event loop)', profile, opts.top),
    ...workers.flatMap((p, i) => threadSection(`Worker thread ${i + 1}`, p, opts.top)),
  ].join('\n');
}

function threadSection(heading: string, profile: CpuProfile, top: number): string[] {
  const { frames, totalMs } = topSelfFrames(profile, top);
  const escape = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `## ${heading}`,
    '',
    `Sampled time ${totalMs.toFixed(0)} ms.`,
    '',
    '| # | frame (function, file:line) | self ms | share |',
    '| --- | --- | --- | --- |',
    ...frames.map((f, i) => `| ${i + 1} | ${escape(f.frame)} | ${f.selfMs.toFixed(1)} | ${(f.share * 100).toFixed(1)}% |`),
    '',
  ];
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    console.error('usage: summariseProfile <file.cpuprofile> [top]');
    process.exit(2);
  }
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  console.log(summariseProfile(profile, { title: path.basename(file), top: Number(top ?? 15) }));
}
