import { parseContainerList, parseGpuUuidList, parsePlacementPolicy, parsePriority, parseWholeNumber } from './annotationValues.js';

test('parseContainerList trims, drops empties and duplicates, keeps order', () => {
  expect(parseContainerList(' b, a,,b ,c')).toEqual(['b', 'a', 'c']);
  expect(parseContainerList(' , ')).toEqual([]);
  expect(parseContainerList(undefined)).toEqual([]);
});

test.each([
  ['high', 'high'],
  [' LOW ', 'low'],
  ['High', 'high'],
  ['medium', null],
  ['', null],
  [undefined, null],
])('parsePriority(%p) is %p', (text, expected) => {
  expect(parsePriority(text)).toBe(expected);
});

test.each([
  ['25', 25],
  [' 3 ', 3],
  ['0', 0],
  ['-1', null],
  ['+1', null],
  ['2.5', null],
  ['1e3', null],
  ['', null],
  ['9999999999', null],
  [undefined, null],
])('parseWholeNumber(%p) is %p', (text, expected) => {
  expect(parseWholeNumber(text)).toBe(expected);
});

test.each([
  ['binpack', 'binpack'],
  [' Spread ', 'spread'],
  ['pack', null],
  ['', null],
  [undefined, null],
])('parsePlacementPolicy(%p) is %p', (text, expected) => {
  expect(parsePlacementPolicy(text)).toBe(expected);
});

test('parseGpuUuidList keeps GPU UUIDs as nvidia-smi prints them and lists what is not one', () => {
  const a = 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d';
  const b = 'GPU-C4529C8D-0000-1111-2222-333344445555';
  expect(parseGpuUuidList(` ${a}, ${b},,${a} `)).toEqual({ uuids: [a, b], invalid: [] });
  expect(parseGpuUuidList(`${a}, gpu-3, MIG-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d, GPU-a65a773d`)).toEqual({
    uuids: [a],
    invalid: ['gpu-3', 'MIG-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d', 'GPU-a65a773d'],
  });
  expect(parseGpuUuidList(' , ')).toEqual({ uuids: [], invalid: [] });
});
