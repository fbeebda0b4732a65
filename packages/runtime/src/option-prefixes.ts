/**
 * Python's optparse accepted any unique prefix of a long option (`--fall URL` for
 * `--fallback-url`), and service files in the wild use them. commander does not, so the
 * CLIs expand prefixes first. An ambiguous prefix is left alone for commander to reject.
 */
export function expandLongOptionPrefixes(
  args: readonly string[],
  longNames: readonly string[],
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (!arg.startsWith('--') || arg.length < 3) {
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const rest = eq < 0 ? '' : arg.slice(eq);
    if (longNames.includes(flag)) {
      out.push(arg);
      continue;
    }
    const matches = longNames.filter((n) => n.startsWith(flag));
    out.push(matches.length === 1 ? matches[0]! + rest : arg);
  }
  return out;
}
