import { burstWindow } from './burstWindow.js';

test('the densest minute of a burst, with a minute before and ten after', () => {
  const steady = Array.from({ length: 100 }, (_, i) => 100 + i * 360);
  const burst = Array.from({ length: 200 }, (_, i) => 7200 + i * 0.05);
  const arrivals = [...steady, ...burst].sort((a, b) => a - b);
  expect(burstWindow(arrivals, 36_000)).toEqual({ fromS: 7140, toS: 7800, pods: 200 });
});

test('a steady trace has no burst', () => {
  expect(burstWindow(Array.from({ length: 1000 }, (_, i) => i * 30), 30_000)).toBeNull();
  expect(burstWindow([], 100)).toBeNull();
});
