import { describeForMessage, listForMessage, quoteForMessage } from './quoteForMessage.js';

test('short text is quoted as it is', () => {
  expect(quoteForMessage('8Gi')).toBe('"8Gi"');
  expect(quoteForMessage('')).toBe('""');
});

test('long text is cut and its length given', () => {
  const text = 'x'.repeat(300_000);
  const quoted = quoteForMessage(text);
  expect(quoted).toBe(`"${'x'.repeat(100)}…" (300000 characters)`);
});

test('a cut never splits a surrogate pair', () => {
  const text = `${'a'.repeat(99)}\u{1F600}${'b'.repeat(50)}`;
  expect(quoteForMessage(text)).toBe(`"${'a'.repeat(99)}…" (${text.length} characters)`);
});

test('lists show at most ten names, then how many more', () => {
  expect(listForMessage(['a', 'b'])).toBe('"a", "b"');
  const names = Array.from({ length: 40_000 }, (_, i) => `c-${i}`);
  const listed = listForMessage(names);
  expect(listed).toBe(`${names.slice(0, 10).map((n) => `"${n}"`).join(', ')} and 39990 more`);
});

test('values of any type are described without printing objects or long strings', () => {
  expect(describeForMessage('admission.k8s.io/v2')).toBe('"admission.k8s.io/v2"');
  expect(describeForMessage(5)).toBe('5');
  expect(describeForMessage(null)).toBe('null');
  expect(describeForMessage(undefined)).toBe('nothing');
  expect(describeForMessage({ a: 1 })).toBe('an object');
  expect(describeForMessage([1])).toBe('a list');
  expect(describeForMessage('x'.repeat(200_000))).toBe(`"${'x'.repeat(100)}…" (200000 characters)`);
});
