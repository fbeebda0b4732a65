import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into its non-empty `\n`-terminated lines (the last one may lack
 * the `\n`), decoding UTF-8 across chunk boundaries. Errors of the source propagate.
 */
export async function* splitLines(source: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of source) {
    rest += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line !== '') yield line;
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}
