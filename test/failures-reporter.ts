// A node:test reporter that writes one JSON line per failed test, as it fails: the suite
// runner (run-suite.ts) passes it beside the usual reporter and prints its lines after the
// run's summary. A CI log keeps only the end of a long run; without this the name of a test
// that failed among a thousand was cut off with the rest of the middle.
import { relative } from 'node:path';
import type { TestEvent } from 'node:test/reporters';

/** What the runner prints of a failure. */
export interface Failure {
  /** The test file, relative to the working directory. */
  file?: string;
  /** The test's name; `nesting` 0 is a top-level test or suite. */
  name: string;
  nesting: number;
  /** The failure's message (the assertion's, or the error's), at most a few lines. */
  message: string;
  /** node:test's kind of failure: `subtestsFailed` is a suite failed by its tests alone. */
  kind?: string;
}

const MAX_LINES = 6;

/** The message of a failure: a failed test's error wraps what the test threw in `cause`. */
function messageOf(error: unknown): string {
  let err = error;
  while (
    err instanceof Error &&
    err.cause !== undefined &&
    (err as { failureType?: string }).failureType !== undefined
  ) {
    err = err.cause;
  }
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const more = lines.length - MAX_LINES;
  return more > 0
    ? [...lines.slice(0, MAX_LINES), `... (${more} more ${more === 1 ? 'line' : 'lines'})`].join(
        '\n',
      )
    : lines.join('\n');
}

export default async function* failuresReporter(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    const { name, nesting, file, details } = event.data;
    const { error } = details;
    const kind = (error as { failureType?: unknown }).failureType;
    const failure: Failure = {
      ...(file === undefined ? {} : { file: relative(process.cwd(), file) }),
      name,
      nesting,
      message: messageOf(error),
      ...(typeof kind === 'string' ? { kind } : {}),
    };
    yield `${JSON.stringify(failure)}\n`;
  }
}

/**
 * The runner's lines for the reporter's output: each failed test once, with its file and
 * the names of the suites around it (a suite's own failure, "N subtests failed", comes after
 * its tests' and names them no better), and its message. Empty when nothing failed.
 */
export function formatFailures(output: string): string[] {
  /** A failed test: `path` is its name after those of the suites found around it so far. */
  const byFile = new Map<string, { path: string[]; nesting: number; message: string }[]>();
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    let f: Failure;
    try {
      f = JSON.parse(line) as Failure;
    } catch {
      continue; // a line cut short by a killed run
    }
    const file = f.file ?? '(no file)';
    let failed = byFile.get(file);
    if (!failed) byFile.set(file, (failed = []));
    if (f.kind === 'subtestsFailed') {
      for (const leaf of failed) {
        // The suite just around the outermost name found so far.
        if (leaf.nesting - leaf.path.length === f.nesting) leaf.path.unshift(f.name);
      }
    } else {
      failed.push({ path: [f.name], nesting: f.nesting, message: f.message });
    }
  }
  const leaves = [...byFile].flatMap(([file, failed]) =>
    failed.map(({ path, message }) => ({ file, path, message })),
  );
  if (leaves.length === 0) return [];
  return [
    `${leaves.length} ${leaves.length === 1 ? 'test' : 'tests'} failed:`,
    ...leaves.flatMap(({ file, path, message }) => [
      `  ${file}: ${path.join(' > ')}`,
      ...message.split('\n').map((line) => `      ${line}`),
    ]),
  ];
}
