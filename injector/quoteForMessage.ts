/**
 * User-supplied text as it may appear in a message: quoted, and cut when long, so a message
 * never echoes a megabyte back. Pure.
 */

/** Characters of one value that a message quotes at most. */
export const QUOTED_CHARACTERS = 100;
/** Names that a message lists at most. */
export const LISTED_NAMES = 10;

/** `"text"`; a longer text is cut to `max` characters and its length given: `"abc…" (250000 characters)`. */
export function quoteForMessage(text: string, max = QUOTED_CHARACTERS): string {
  if (text.length <= max) return `"${text}"`;
  // Never cut a surrogate pair in half.
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `"${text.slice(0, end)}…" (${text.length} characters)`;
}

/** `"a", "b", "c"`: each quoted as above, at most `max` of them, then how many more. */
export function listForMessage(names: readonly string[], max = LISTED_NAMES): string {
  const shown = names.slice(0, max).map((n) => quoteForMessage(n));
  return names.length > max ? `${shown.join(', ')} and ${names.length - max} more` : shown.join(', ');
}
