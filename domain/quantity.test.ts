import { formatMiB, quantityToMiB } from './quantity.js';

test.each([
  ['8Gi', 8192],
  ['8192Mi', 8192],
  ['10G', Math.ceil(10e9 / 1048576)],
  ['1.5Gi', 1536],
  ['512Ki', 1],
  ['1048576', 1],
  ['1T', Math.ceil(1e12 / 1048576)],
])('quantityToMiB(%s) = %d', (text, mib) => {
  expect(quantityToMiB(text)).toBe(mib);
});

test.each(['', 'Gi', '8 GB', '-1Gi', '0', '8gi', 'abc'])('quantityToMiB rejects %j', (text) => {
  expect(quantityToMiB(text)).toBeNull();
});

test('formatMiB is short and readable', () => {
  expect(formatMiB(6246)).toBe('6.1Gi');
  expect(formatMiB(8192)).toBe('8Gi');
  expect(formatMiB(512)).toBe('512Mi');
});
