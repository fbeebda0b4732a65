import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from './proc.js';

/** The compiled child scripts (bench/dist/child/). */
export const CHILD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child');

/**
 * Runs `bench/dist/child/<script>.js` in its own process (so it does not share a CPU
 * thread or a heap with the orchestrator) with JSON arguments; returns the JSON object it
 * prints last.
 */
export async function runChild<T>(
  script: string,
  args: object,
  options: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<T> {
  const r = await runOk(
    process.execPath,
    [...(options.nodeArgs ?? []), path.join(CHILD_DIR, `${script}.js`), JSON.stringify(args)],
    { env: options.env ?? process.env, timeoutMs: options.timeoutMs ?? 1_800_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}
