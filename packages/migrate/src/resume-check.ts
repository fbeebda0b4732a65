import type { MigrateClient } from './migrator.js';
import { describeError } from './retry.js';
import type { StateFile } from './state-file.js';

/** Finished files checked before a state is trusted: 1% of them, at least this many... */
const SAMPLE_MIN = 16;
/** ...and at most this many (256 HEADs take well under a second on a LAN). */
const SAMPLE_MAX = 256;
/** HEADs of the sample in flight at once. */
const SAMPLE_CONCURRENCY = 8;

/**
 * What was decided about the finished files a state file lists, before the run (issue
 * 18: a rehearsal's state file made the real migration a silent no-op).
 * - `none`: the state lists no finished file.
 * - `trusted`: the state was made against this store (or cannot tell) and a random sample
 *   of its finished files is on the server: they are skipped without asking.
 * - `check-all`: the state was made against another store, or part of the sample is
 *   missing: every file it lists is asked for (HEAD) and uploaded unless the server has
 *   it, and the state file starts afresh.
 */
export interface ResumeDecision {
  decision: 'none' | 'trusted' | 'check-all';
  /** Finished files the state listed. */
  finished: number;
  /** The store the state was made against, if it says. */
  stateStore: string | undefined;
  /** The store the server answered, if it does (the Python 2.x server does not). */
  serverStore: string | undefined;
  /** Finished files asked for on the server, and how many of them it lacked. */
  sampled: number;
  missing: number;
  /** One line for the operator, said at the start of the run. */
  message: string;
}

/** How many of `finished` files to check: 1%, within [SAMPLE_MIN, SAMPLE_MAX]. */
export function sampleSize(finished: number): number {
  return Math.min(finished, Math.max(SAMPLE_MIN, Math.min(SAMPLE_MAX, Math.ceil(finished / 100))));
}

/**
 * Decides whether the finished files of `state` may be skipped on the server behind
 * `client`, whose store is `serverStore`, and restarts the state file when not.
 */
export async function checkResume(
  state: StateFile,
  serverStore: string | undefined,
  client: Pick<MigrateClient, 'stat'>,
  options: { url: string; signal?: AbortSignal },
): Promise<ResumeDecision> {
  const finished = state.size;
  const stateStore = state.storeId;
  const base = { finished, stateStore, serverStore, sampled: 0, missing: 0 };
  const otherStore = stateStore !== undefined && stateStore !== serverStore;
  if (otherStore) {
    // Even with nothing finished: the file must name the store its next records are for.
    await state.restart(serverStore);
    const serves =
      serverStore === undefined ? 'a server that names no store' : `store ${serverStore}`;
    return {
      ...base,
      decision: finished === 0 ? 'none' : 'check-all',
      message:
        `ft-migrate: the state file ${state.path} was made against store ${stateStore}, but ` +
        `${options.url} is ${serves} (a rehearsal's state?): ` +
        (finished === 0
          ? 'starting it afresh'
          : `not trusting it; each of the ${finished} files it lists as finished is ` +
            'checked on the server and uploaded unless there'),
    };
  }
  if (finished === 0) return { ...base, decision: 'none', message: '' };

  const sample = state.sample(sampleSize(finished));
  let missing = 0;
  let failure: unknown;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sample.length && failure === undefined) {
      const [name, version] = sample[next++]!;
      try {
        // Not following a redirect: a server in migration mode answers a name its store
        // lacks with a 307 to the old tree, which has every file.
        const remote = await client.stat(name, {
          followRedirects: false,
          ...(options.signal && { signal: options.signal }),
        });
        if (remote === null || remote.version < version) missing += 1;
      } catch (err) {
        failure = err;
      }
    }
  };
  await Promise.all(Array.from({ length: SAMPLE_CONCURRENCY }, worker));
  const sampled = sample.length;
  if (failure !== undefined || missing > 0) {
    await state.restart(serverStore);
    const why =
      failure !== undefined
        ? `cannot check them on the server (${describeError(failure)})`
        : `${missing} of ${sampled} of them, picked at random, are not on the server`;
    return {
      ...base,
      sampled,
      missing,
      decision: 'check-all',
      message:
        `ft-migrate: the state file ${state.path} lists ${finished} files as finished, but ` +
        `${why}: each is checked on the server and uploaded unless there`,
    };
  }
  const made =
    stateStore === undefined
      ? 'the state file names no store'
      : `the state file was made against this store, ${stateStore}`;
  return {
    ...base,
    sampled,
    decision: 'trusted',
    message:
      `ft-migrate: resuming from ${state.path}: the ${finished} files it lists as finished ` +
      `are skipped without asking the server (${made}; ${sampled} of them, picked at ` +
      'random, are on the server)',
  };
}
