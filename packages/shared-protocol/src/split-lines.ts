import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into its non-empty `\n`-terminated lines (the last one may lack
 * the `\n`), decoding UTF-8 across chunk boundaries. Errors of the source propagate.
 * `maxLineChars`: a longer line throws a `RangeError` instead of being held whole (a
 * source that never sends a `\n` would otherwise fill the memory).
 */
export async function* splitLines(
  source: AsyncIterable<Buffer | string | Uint8Array>,
  maxLineChars = Infinity,
): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of source) {
    rest += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    const lines = rest.split('\n');
    rest = lines.pop()!;
    if (rest.length > maxLineChars) {
      throw new RangeError(`a line is longer than ${maxLineChars} characters`);
    }
    for (const line of lines) {
      if (line.length > maxLineChars) {
        throw new RangeError(`a line is longer than ${maxLineChars} characters`);
      }
      if (line !== '') yield line;
    }
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}
