/**
 * The JSON text of a request body read raw, parsed as `express.json({ strict: true })` parses
 * it, with the same errors: bodies read raw (large ones, screened on a worker thread) must get
 * the same 400 messages as bodies express parses. Pure.
 */

/** A body that is not JSON, or (strict) whose top level is not an object or a list. `type` is what the HTTP edge keys on. */
export class JsonBodyError extends Error {
  readonly status = 400;
  readonly type = 'entity.parse.failed';
  constructor(message: string) {
    super(message);
    this.name = 'SyntaxError';
  }
}

/** JSON's whitespace (RFC 8259): space, tab, line feed, carriage return. */
const FIRST_NON_WHITESPACE = /^[ \t\n\r]*([^ \t\n\r]|$)/;
const SYNTAX_CHAR = '#';
const SYNTAX_RUN = /#+/g;

/** UTF-8 text of the body as express decodes it (malformed sequences replaced, a leading byte order mark dropped). */
export function bodyText(bytes: Uint8Array): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Parse a UTF-8 JSON body. Throws JsonBodyError with express's message. */
export function parseJsonBody(bytes: Uint8Array): unknown {
  const text = bodyText(bytes);
  // An empty body is read as {} by express (a common client mistake), then refused by the decoder.
  if (text.length === 0) return {};
  if (text[0] !== '{' && text[0] !== '[') {
    const first = FIRST_NON_WHITESPACE.exec(text)?.[1] || undefined;
    if (first !== '{' && first !== '[') throw strictViolation(text, first);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new JsonBodyError((err as Error).message);
  }
}

/** The error JSON.parse gives for a top level that is not an object or a list, quoting the body from that character on. */
function strictViolation(text: string, first: string | undefined): JsonBodyError {
  const index = first === undefined ? -1 : text.indexOf(first);
  const partial = index === -1 ? '' : text.substring(0, index) + SYNTAX_CHAR.repeat(text.length - index);
  try {
    JSON.parse(partial);
    return new JsonBodyError('strict violation');
  } catch (err) {
    return new JsonBodyError((err as Error).message.replace(SYNTAX_RUN, (run) => text.substring(index, index + run.length)));
  }
}
