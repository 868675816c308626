import type { CpuProfile } from './summariseProfile.js';
import { summariseProfile, topSelfFrames } from './summariseProfile.js';

const frame = (id: number, functionName: string, url = '', lineNumber = 0): CpuProfile['nodes'][number] => ({ id, callFrame: { functionName, url, lineNumber, columnNumber: 0 } });

const profile: CpuProfile = {
  nodes: [
    frame(1, '(root)'),
    frame(2, 'chooseSlot', 'file:///repo/dist/placement/chooseSlot.js', 90),
    frame(3, 'parse', 'file:///repo/node_modules/body-parser/lib/types/json.js', 75),
    // The same function reached by another path: its self time adds up.
    frame(4, 'chooseSlot', 'file:///repo/dist/placement/chooseSlot.js', 90),
    frame(5, ''),
  ],
  startTime: 0,
  endTime: 100,
  samples: [2, 3, 4, 2, 5, 3, 2],
  timeDeltas: [1000, 2000, 1000, 1000, 500, 2000, 500],
};

test('self time is summed per frame over every node and sample, largest first', () => {
  const { frames, totalMs } = topSelfFrames(profile, 15);
  expect(totalMs).toBeCloseTo(8);
  expect(frames.map((f) => [f.frame, f.selfMs])).toEqual([
    ['parse body-parser/lib/types/json.js:76', 4],
    ["chooseSlot placement/chooseSlot.js:91", 3.5],
    ['(anonymous)', 0.5],
  ]);
});

test('the report keeps only the top frames', () => {
  const text = summariseProfile(profile, { title: 'test', top: 1 });
  expect(text).toContain('| 1 | parse body-parser/lib/types/json.js:76 | 4.0 | 50.0% |');
  expect(text).not.toContain('chooseSlot');
});

test('each worker thread gets its own section after the main thread', () => {
  const text = summariseProfile(profile, { title: 'test', top: 1, threads: [profile, profile] });
  expect(text.split('\n').filter((l) => l.startsWith('## '))).toEqual(['## Main thread (event loop)', '## Worker thread 1', '## Worker thread 2']);
});
