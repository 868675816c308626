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

/**
 * Any value from a request as a message shows it: a string or small scalar as JSON (`"v2"`, `5`,
 * `null`), a long string cut as in quoteForMessage, and an object or a list only by its kind, since
 * it may be megabytes or nested too deep to print.
 */
export function describeForMessage(value: unknown): string {
  if (typeof value === 'string') return value.length <= QUOTED_CHARACTERS ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, QUOTED_CHARACTERS)).slice(0, -1)}…" (${value.length} characters)`;
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

/** Characters of a library's or the runtime's own error text that a message repeats at most. */
export const REPEATED_ERROR_CHARACTERS = 300;

/** `text`, cut to REPEATED_ERROR_CHARACTERS with "…" when longer: for error texts that may quote their input. */
export function shortenForMessage(text: string, max = REPEATED_ERROR_CHARACTERS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
