import { InvalidLabelSelector, matchesLabelSelector } from './matchLabelSelector.js';

test('a missing or empty selector matches every label set', () => {
  expect(matchesLabelSelector(undefined, { a: '1' })).toBe(true);
  expect(matchesLabelSelector({}, {})).toBe(true);
});

test('matchLabels needs every pair, with equal values', () => {
  const sel = { matchLabels: { team: 'ml', env: 'prod' } };
  expect(matchesLabelSelector(sel, { team: 'ml', env: 'prod', extra: 'x' })).toBe(true);
  expect(matchesLabelSelector(sel, { team: 'ml' })).toBe(false);
  expect(matchesLabelSelector(sel, { team: 'ml', env: 'dev' })).toBe(false);
});

test('In needs the key with one of the values', () => {
  const sel = { matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['a', 'b'] }] };
  expect(matchesLabelSelector(sel, { tier: 'b' })).toBe(true);
  expect(matchesLabelSelector(sel, { tier: 'c' })).toBe(false);
  expect(matchesLabelSelector(sel, {})).toBe(false);
});

test('NotIn is satisfied by a missing key or another value', () => {
  const sel = { matchExpressions: [{ key: 'inject', operator: 'NotIn' as const, values: ['false'] }] };
  expect(matchesLabelSelector(sel, {})).toBe(true);
  expect(matchesLabelSelector(sel, { inject: 'true' })).toBe(true);
  expect(matchesLabelSelector(sel, { inject: 'false' })).toBe(false);
});

test('Exists and DoesNotExist look at the key only', () => {
  expect(matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'Exists' }] }, { k: '' })).toBe(true);
  expect(matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'Exists' }] }, {})).toBe(false);
  expect(matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'DoesNotExist' }] }, {})).toBe(true);
  expect(matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'DoesNotExist' }] }, { k: 'v' })).toBe(false);
});

test('matchLabels and every expression must all hold', () => {
  const sel = { matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'NotIn' as const, values: ['x'] }, { key: 'c', operator: 'Exists' as const }] };
  expect(matchesLabelSelector(sel, { a: '1', c: '' })).toBe(true);
  expect(matchesLabelSelector(sel, { a: '1', b: 'x', c: '' })).toBe(false);
  expect(matchesLabelSelector(sel, { a: '1' })).toBe(false);
});

test('a selector the API server would refuse is reported, not guessed at', () => {
  expect(() => matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'In', values: [] }] }, {})).toThrow(InvalidLabelSelector);
  expect(() => matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'Exists', values: ['v'] }] }, {})).toThrow(/takes no values/);
  expect(() => matchesLabelSelector({ matchExpressions: [{ key: 'k', operator: 'Gt' as never, values: ['1'] }] }, {})).toThrow(/unknown selector operator Gt/);
});
