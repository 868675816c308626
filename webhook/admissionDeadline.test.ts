import { afterEach, beforeEach, expect, jest, test } from '@jest/globals';
import { admissionDeadline } from './admissionDeadline.js';

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

test('the signal aborts with a TimeoutError once the time is up', () => {
  const { signal } = admissionDeadline(4000);
  jest.advanceTimersByTime(3999);
  expect(signal.aborted).toBe(false);
  jest.advanceTimersByTime(1);
  expect(signal.aborted).toBe(true);
  expect(signal.reason).toBeInstanceOf(DOMException);
  expect((signal.reason as DOMException).name).toBe('TimeoutError');
  expect(() => signal.throwIfAborted()).toThrow('The operation was aborted due to timeout');
});

test('clearing it leaves no timer behind and the signal never aborts', () => {
  const { signal, clear } = admissionDeadline(4000);
  expect(jest.getTimerCount()).toBe(1);
  clear();
  expect(jest.getTimerCount()).toBe(0);
  jest.advanceTimersByTime(10_000);
  expect(signal.aborted).toBe(false);
});
