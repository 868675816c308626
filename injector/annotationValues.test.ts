import { parseContainerList, parsePriority, parseWholeNumber } from './annotationValues.js';

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
