// `fatal` rejects invalid and overlong sequences and lone surrogates; `ignoreBOM` keeps a
// leading U+FEFF that a real name may start with.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The real name of a name component that the Python 2.x server stored double-encoded, or
 * undefined when it is not one. That server read the request's UTF-8 bytes as latin-1 and
 * wrote the result as UTF-8, so `zażółć` (7a 61 c5 bc ...) is on disk as `zaÅ¼Ã³Å\x82Ä\x87`.
 * A component is taken as double-encoded when every character is <= U+00FF and those
 * characters, as latin-1 bytes, are valid UTF-8 with at least one byte >= 0x80.
 *
 * Only a store adopted from the Python server holds such names: applied to our own names it
 * would mangle the rare real name that looks like mojibake (`Ã©`), so ft-recover renames
 * only while adopting.
 */
export function decodeDoubleEncoded(component: string): string | undefined {
  let high = false;
  for (let i = 0; i < component.length; i++) {
    const c = component.charCodeAt(i);
    if (c > 0xff) return undefined;
    if (c >= 0x80) high = true;
  }
  if (!high) return undefined;
  try {
    return utf8.decode(Buffer.from(component, 'latin1'));
  } catch {
    return undefined;
  }
}
