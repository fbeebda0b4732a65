import { isUtf8 } from 'node:buffer';

/**
 * A path that is not valid UTF-8, printable and findable again: its valid UTF-8 runs as
 * they are, every other byte (and control characters) as `\xNN`, a backslash as `\\`.
 * Bash reads the same form back in `$'...'` (`ls $'latin1-\xe9.txt'`), where the
 * U+FFFD a lossy decoding leaves would match no file (issue 17).
 */
export function escapeBytes(bytes: Buffer): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    const length = sequenceLength(lead);
    const sequence = bytes.subarray(i, i + length);
    const control = lead < 0x20 || lead === 0x7f;
    if (length > 0 && sequence.length === length && !control && isUtf8(sequence)) {
      const text = sequence.toString('utf8');
      out += text === '\\' ? '\\\\' : text;
      i += length;
    } else {
      out += `\\x${lead.toString(16).padStart(2, '0')}`;
      i += 1;
    }
  }
  return out;
}

/** The length of the UTF-8 sequence a lead byte starts, or 0 when it starts none. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}
