import { EventEmitter, setMaxListeners } from 'node:events';
import fs, { type Stats } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { sha256OfFile, sha256OfStream, type ByteSource } from '@filetracker/runtime';
import type {
  GetOptions,
  GetResult,
  PutOptions,
  PutStoredOptions,
  PutStoredResult,
  StatResult,
  StoredBody,
} from '@filetracker/shared-protocol';
import {
  FiletrackerError,
  SMALL_FILE_BYTES,
  legacyVersion,
} from '@filetracker/shared-protocol/wire';
import { BoundedQueue } from './bounded-queue.js';
import { excludeMatcher } from './exclude.js';
import { formatVersion } from './format.js';
import { closeQuietly, openSmallFile, readSmallFile } from './local-file.js';
import { backoffMs, describeError, errorCode, isTransient } from './retry.js';
import { walkSource, type SourceEntry } from './source.js';
import type { CopyEntry, CopySource } from './sources/copy-source.js';

// Through callbacks, promisified: cheaper than fs/promises, and each file takes two (see
// shared-protocol's put-body.ts).
const lstat = promisify(fs.lstat);
const stat = promisify(fs.stat);
const realpath = promisify(fs.realpath);

/**
 * Files uploaded at once. With the store on a disk, more in flight share more fsyncs: the
 * bench's 20,000 small files (2 cores, docs/BENCHMARKS.md at 5deba7e) went at 1,398 files/s
 * with 16 and 1,887 with 64 over HTTP (2,363 and 3,049 with --into), peak RSS 88 and 94 MiB.
 * 16 stays the default for an online migration, which shares the server with its live
 * clients (the judges, the web app); README says when to raise it. An earlier measurement
 * with the store on tmpfs (no fsync waits, the CPU the limit) found 16 never worse than 8,
 * 10-20% faster on small files, and 32 and 64 slower; a file under 1 MiB is read whole,
 * so memory grows with -j.
 */
export const DEFAULT_CONCURRENCY = 16;

/** Retries of a transient failure (connection error, timeout, 5xx) per request. */
export const DEFAULT_RETRIES = 3;

/** First retry after ~250 ms, then ~500 ms, ~1 s (see backoffMs). */
const DEFAULT_RETRY_BASE_MS = 250;

/**
 * After this many files in a row failed transiently even after their retries (and no
 * request succeeded in between), the server is down, not flaky: stop instead of failing
 * the rest of a million-file tree one by one. Rerunning the command resumes.
 */
const GIVE_UP_AFTER_FAILURES = 50;

/** The report lists at most this many failures, differences and reported skips each. */
const LIST_CAP = 10_000;

/** What a run does. */
export type MigrateMode = 'upload' | 'dry-run' | 'verify';

/**
 * What the migrator asks of the server: ft-migrate's `HttpUploader`, or a
 * `FiletrackerClient` (tests can pass a fake). `put` gets a small file's bytes, a larger
 * file's path; `putStored` is needed only when copying from a 2.x source (`from`).
 */
export interface MigrateClient {
  put(name: string, source: string | Buffer, options: PutOptions): Promise<number>;
  putStored?(name: string, stored: StoredBody, options: PutStoredOptions): Promise<PutStoredResult>;
  stat(
    name: string,
    options: { signal?: AbortSignal; followRedirects: false },
  ): Promise<StatResult | null>;
  get(name: string, options: GetOptions): Promise<GetResult>;
}

/** Where finished files are remembered across runs (a `StateFile`). */
export interface ResumeState {
  has(name: string, version: number): boolean;
  /** `deleted`: finished because a client deleted the name on the server. */
  record(name: string, version: number, deleted?: boolean): void;
  /** Finished files it lists; absent means it may list some. */
  readonly size?: number;
}

/** A regular file to migrate. */
export interface LocalFile {
  path: string;
  name: string;
  size: number;
  /** Whole seconds of the mtime (`Math.floor(mtimeMs / 1000)`), as the Python migrator sent. */
  version: number;
}

/**
 * Why a file was not uploaded without it being a failure: finished by an earlier run
 * (state file), already on the server at this version (HEAD, `--no-state`), the server has
 * a newer version, a client deleted the name on the server during an online migration
 * (410 `DELETED`: the server keeps a tombstone), a symlink (not followed), a symlink whose
 * target is outside FILES (with `--follow-symlinks`), a FIFO, socket or device, deleted
 * before it was read, the run was interrupted, or left out by `--exclude` (a file, or a
 * directory not entered: one entry).
 */
export type SkipReason =
  | 'already-done'
  | 'already-there'
  | 'server-newer'
  | 'deleted-on-server'
  | 'symlink'
  | 'symlink-outside'
  | 'special'
  | 'vanished'
  | 'interrupted'
  | 'excluded';

/** Skips worth telling the operator about (the others are the point of resuming). */
export const REPORTED_SKIPS: ReadonlySet<SkipReason> = new Set([
  'server-newer',
  'deleted-on-server',
  'symlink',
  'symlink-outside',
  'special',
  'vanished',
]);

export interface SkippedFile {
  path: string;
  name: string;
  size: number;
  reason: SkipReason;
  /** One line for people. */
  detail: string;
}

/** The path of an entry whose path is not valid UTF-8 (see SourceEntry). */
interface BytePath {
  /** The bytes of `path` in hex; `path` and `name` show them escaped (`\xe9`). */
  pathHex?: string;
}

export interface FailedFile extends BytePath {
  path: string;
  name: string;
  size: number;
  /** The protocol code (`BAD_PATH`, `SERVER_ERROR`...), an errno code, or one of ours
   * (`CHANGED`, `BROKEN_SYMLINK`, `NOT_UTF8`, `WALK_FAILED`). */
  code: string;
  /** The HTTP status, when the server answered. */
  status?: number;
  reason: string;
}

export interface RetryEvent {
  path: string;
  name: string;
  /** 1 for the first retry. */
  attempt: number;
  code: string;
  reason: string;
  delayMs: number;
}

/** What `--verify` found different on the server. */
export interface Difference {
  path: string;
  name: string;
  kind: 'missing' | 'version' | 'size' | 'content';
  detail: string;
}

/** Totals of the concurrent count; `done` once the whole tree was counted. */
export interface ScanProgress {
  files: number;
  bytes: number;
  done: boolean;
  error?: string;
}

/** A number of files and their bytes. */
export interface Tally {
  files: number;
  bytes: number;
}

/** The outcome of a run (also the body of `--report FILE`). */
export interface MigrationSummary {
  mode: MigrateMode;
  files: string;
  root: string;
  startedAt: string;
  durationMs: number;
  /** Stopped early (SIGINT, or the server went away): see `stopReason`. */
  interrupted: boolean;
  stopReason?: string;
  /** Every entry of the tree handled, whatever the outcome. */
  processed: Tally;
  uploaded: Tally;
  /** `--dry-run`: what would be uploaded. */
  wouldUpload: Tally;
  /** `--verify`: files found identical on the server. */
  verified: Tally;
  skipped: Tally & { byReason: Record<SkipReason, number> };
  failed: Tally;
  /**
   * Of `failed`, entries whose name is not valid UTF-8 (`NOT_UTF8`): no rerun can upload
   * them; rename them or `--exclude` them.
   */
  notUtf8: number;
  retries: number;
  /** Files and MiB per second: uploaded ones, or processed ones for a dry run or a verify. */
  throughput: { filesPerSecond: number; mibPerSecond: number };
  failures: FailedFile[];
  failuresOmitted: number;
  /** Skipped files worth a look ({@link REPORTED_SKIPS}). */
  skippedFiles: SkippedFile[];
  skippedFilesOmitted: number;
  differences: Difference[];
  differencesOmitted: number;
}

/** The events of a {@link Migrator}; every `file-start` is followed by one of
 * `file-done`, `file-skip`, `file-fail` or `file-diff` for the same entry. */
export interface MigratorEvents {
  scan: [ScanProgress];
  'file-start': [SourceEntry];
  /** Uploaded; in a dry run: would be uploaded; in a verify: identical on the server. */
  'file-done': [LocalFile];
  'file-skip': [SkippedFile];
  'file-fail': [FailedFile];
  'file-diff': [Difference];
  'file-retry': [RetryEvent];
  finished: [MigrationSummary];
}

export interface MigratorOptions {
  /** Absolute path of the tree (or single file) to migrate; with `from`, its location. */
  files: string;
  /** Absolute path of the store root the names are relative to; contains `files`. */
  root: string;
  /**
   * Copy the files of a filetracker 2.x server or store instead of walking a 1.x tree
   * (`--from`, `--from-store`; see sources/copy-source.ts). Symlink and exclude options
   * do not apply.
   */
  from?: CopySource;
  client: MigrateClient;
  mode?: MigrateMode;
  /** `--verify=digest`: also download every file and compare sha256. */
  verifyDigest?: boolean;
  concurrency?: number;
  /** zlib level of uploads (the client's default, 6, when absent). */
  gzipLevel?: number;
  retries?: number;
  retryBaseMs?: number;
  /**
   * Upload the target of a symlink to a file under the symlink's name, when the target
   * (every link resolved) is inside `files`.
   */
  followSymlinks?: boolean;
  /** With `followSymlinks`, also follow symlinks whose target is outside `files`. */
  followSymlinksOutside?: boolean;
  /** `--exclude`: gitignore-style patterns, relative to `files` (see exclude.ts). */
  exclude?: readonly string[];
  /** Skip files it lists and record finished ones (not in a dry run or verify). */
  state?: ResumeState;
  /** Ask the server (HEAD) before each upload and skip files it has at this version or newer. */
  checkServer?: boolean;
  /**
   * Do not trust `state`: ask the server (HEAD) about each file it lists as finished, as
   * `checkServer` does, and upload it unless there (the state was made against another
   * store, or some of its files are missing: see resume-check.ts). Other files are
   * uploaded without asking.
   */
  checkFinished?: boolean;
  /** Count the tree's files and bytes alongside (for progress totals). */
  countTotals?: boolean;
}

type Kind = 'FIFO' | 'socket' | 'character device' | 'block device' | 'special file';

function kindOf(info: Stats): Kind {
  if (info.isFIFO()) return 'FIFO';
  if (info.isSocket()) return 'socket';
  if (info.isCharacterDevice()) return 'character device';
  if (info.isBlockDevice()) return 'block device';
  return 'special file';
}

function emptyTally(): Tally {
  return { files: 0, bytes: 0 };
}

function add(tally: Tally, bytes: number): void {
  tally.files += 1;
  tally.bytes += bytes;
}

function versionOf(info: Stats): number {
  return legacyVersion(info.mtimeMs);
}

/**
 * Migrates a 1.x tree into a filetracker 2.x server: walks it (streaming), and several
 * workers take entries from a bounded queue and upload each file under `/` + its path
 * relative to the root, with its mtime as version. Retries transient failures, reports
 * the rest per file and goes on. Knows nothing of terminals: it emits
 * {@link MigratorEvents}, which the ink view and the plain log render.
 */
export class Migrator extends EventEmitter<MigratorEvents> {
  readonly #files: string;
  readonly #root: string;
  readonly #client: MigrateClient;
  readonly #mode: MigrateMode;
  readonly #verifyDigest: boolean;
  readonly #concurrency: number;
  readonly #gzipLevel: number | undefined;
  readonly #retries: number;
  readonly #retryBaseMs: number;
  readonly #followSymlinks: boolean;
  readonly #followSymlinksOutside: boolean;
  readonly #exclude: readonly string[];
  readonly #from: CopySource | undefined;
  /** `files` with every symlink resolved, once a followed symlink needs it. */
  #realFiles: Promise<string> | undefined;
  readonly #state: ResumeState | undefined;
  readonly #checkServer: boolean;
  readonly #checkFinished: boolean;
  readonly #countTotals: boolean;
  readonly #controller = new AbortController();
  #stopReason: string | undefined;
  #ran = false;
  #transientStreak = 0;
  #retryCount = 0;
  readonly #processed = emptyTally();
  readonly #uploaded = emptyTally();
  readonly #wouldUpload = emptyTally();
  readonly #verified = emptyTally();
  readonly #skipped = emptyTally();
  readonly #failed = emptyTally();
  readonly #byReason: Record<SkipReason, number> = {
    'already-done': 0,
    'already-there': 0,
    'server-newer': 0,
    'deleted-on-server': 0,
    symlink: 0,
    'symlink-outside': 0,
    special: 0,
    vanished: 0,
    interrupted: 0,
    excluded: 0,
  };
  #notUtf8 = 0;
  readonly #failures: FailedFile[] = [];
  readonly #skippedFiles: SkippedFile[] = [];
  readonly #differences: Difference[] = [];
  #failuresSeen = 0;
  #skippedFilesSeen = 0;
  #differencesSeen = 0;

  constructor(options: MigratorOptions) {
    super();
    this.#files = options.files;
    this.#root = options.root;
    this.#client = options.client;
    this.#mode = options.mode ?? 'upload';
    this.#verifyDigest = options.verifyDigest ?? false;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#gzipLevel = options.gzipLevel;
    this.#retries = options.retries ?? DEFAULT_RETRIES;
    this.#retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.#followSymlinks = options.followSymlinks ?? false;
    this.#followSymlinksOutside = options.followSymlinksOutside ?? false;
    this.#exclude = options.exclude ?? [];
    this.#from = options.from;
    if (this.#from && !this.#client.putStored) {
      throw new TypeError('copying from a 2.x source needs a client with putStored');
    }
    this.#state = this.#mode === 'verify' ? undefined : options.state;
    this.#checkServer = options.checkServer ?? false;
    this.#checkFinished = options.checkFinished ?? false;
    this.#countTotals = options.countTotals ?? false;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new TypeError(`concurrency is a positive integer, got ${this.#concurrency}`);
    }
    if (!Number.isInteger(this.#retries) || this.#retries < 0) {
      throw new TypeError(`retries is a whole number, got ${this.#retries}`);
    }
  }

  get mode(): MigrateMode {
    return this.#mode;
  }

  /**
   * Stops the run: no further files are started and requests in flight are aborted (the
   * signal is handed to the client); `run()` then resolves with `interrupted: true`.
   */
  abort(reason = 'interrupted'): void {
    if (this.#controller.signal.aborted) return;
    this.#stopReason = reason;
    this.#controller.abort();
  }

  /** Runs the migration once; resolves when every started file is finished or aborted. */
  async run(): Promise<MigrationSummary> {
    if (this.#ran) throw new TypeError('A Migrator runs once');
    this.#ran = true;
    const startedMs = Date.now();
    const startedAt = new Date(startedMs).toISOString();
    const signal = this.#controller.signal;
    // Every request in flight listens to the signal (got, retry waits, digests); a leak
    // would still exceed this and warn.
    setMaxListeners(4 * this.#concurrency + 16, signal);

    // The walker may run this far ahead of the uploaders: enough to hide directory reads
    // behind uploads, small enough (a few hundred short paths) that memory does not grow
    // with the tree.
    const queue = new BoundedQueue<SourceEntry>(Math.max(256, 16 * this.#concurrency));
    const onAbort = (): void => queue.close(true);
    signal.addEventListener('abort', onAbort, { once: true });

    const scanController = new AbortController();
    const scan = this.#countTotals
      ? this.#scan(AbortSignal.any([signal, scanController.signal]))
      : Promise.resolve();

    const produce = (async () => {
      try {
        // An unreadable directory is reported and passed over; the rest still migrates.
        const onUnreadable = (err: NodeJS.ErrnoException): void => this.#unreadableDir(err);
        const exclude = excludeMatcher(this.#exclude);
        const walk =
          this.#from?.entries(signal) ??
          walkSource(this.#files, this.#root, { signal, onUnreadable, exclude });
        for await (const entry of walk) {
          if (!(await queue.push(entry))) break;
        }
      } catch (err) {
        if (!signal.aborted) this.#walkFailed(err);
      } finally {
        queue.close();
      }
    })();
    const workers = Array.from({ length: this.#concurrency }, () => this.#work(queue));
    await Promise.all([produce, ...workers]);
    // The count only feeds the progress display; once every file is done it is moot.
    scanController.abort();
    await scan;
    signal.removeEventListener('abort', onAbort);

    const durationMs = Date.now() - startedMs;
    const rated = this.#mode === 'upload' ? this.#uploaded : this.#processed;
    const seconds = Math.max(durationMs, 1) / 1000;
    const summary: MigrationSummary = {
      mode: this.#mode,
      files: this.#files,
      root: this.#root,
      startedAt,
      durationMs,
      interrupted: signal.aborted,
      ...(this.#stopReason === undefined ? {} : { stopReason: this.#stopReason }),
      processed: { ...this.#processed },
      uploaded: { ...this.#uploaded },
      wouldUpload: { ...this.#wouldUpload },
      verified: { ...this.#verified },
      skipped: { ...this.#skipped, byReason: { ...this.#byReason } },
      failed: { ...this.#failed },
      notUtf8: this.#notUtf8,
      retries: this.#retryCount,
      throughput: {
        filesPerSecond: round(rated.files / seconds),
        mibPerSecond: round(rated.bytes / 2 ** 20 / seconds),
      },
      failures: this.#failures,
      failuresOmitted: this.#failuresSeen - this.#failures.length,
      skippedFiles: this.#skippedFiles,
      skippedFilesOmitted: this.#skippedFilesSeen - this.#skippedFiles.length,
      differences: this.#differences,
      differencesOmitted: this.#differencesSeen - this.#differences.length,
    };
    this.emit('finished', summary);
    return summary;
  }

  async #work(queue: BoundedQueue<SourceEntry>): Promise<void> {
    const signal = this.#controller.signal;
    for (;;) {
      const entry = await queue.shift();
      if (entry === undefined || signal.aborted) return;
      this.emit('file-start', entry);
      await this.#process(entry);
    }
  }

  /** Handles one entry; never throws: every outcome is an event. */
  async #process(entry: SourceEntry): Promise<void> {
    if (entry.excludedBy !== undefined || entry.pathHex !== undefined) {
      this.#leftOut(entry);
      return;
    }
    if (entry.copy) {
      await this.#copy(entry, entry.copy);
      return;
    }
    // A regular file to upload is opened first, its stat taken on the descriptor (see
    // openSmallFile); anything else, or a file that is not small or not what the walk
    // saw any more, is looked at by its lstat.
    const opened =
      this.#mode === 'upload' && entry.regular ? await openSmallFile(entry.path) : undefined;
    const info = opened?.info ?? (await this.#inspect(entry));
    if (info === undefined) return;
    const file: LocalFile = {
      path: entry.path,
      name: entry.name,
      size: info.size,
      version: versionOf(info),
    };
    try {
      if (this.#mode === 'verify') await this.#verify(file);
      else await this.#upload(file, info, opened?.fd);
    } catch (err) {
      if (this.#controller.signal.aborted) {
        this.#skip(file, 'interrupted', 'the run was interrupted');
      } else {
        this.#requestFailed(file, err);
      }
    }
  }

  /** The stat of a regular file to upload, or `undefined` after reporting why not. */
  async #inspect(entry: SourceEntry): Promise<Stats | undefined> {
    let info: Stats;
    try {
      info = await lstat(entry.path);
    } catch (err) {
      this.#unreadable(entry, err);
      return undefined;
    }
    if (info.isSymbolicLink()) {
      if (!this.#followSymlinks) {
        this.#skip(
          { ...entry, size: 0 },
          'symlink',
          'a symlink: not uploaded (--follow-symlinks uploads its target)',
        );
        return undefined;
      }
      try {
        info = await stat(entry.path);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') {
          this.#fail({ ...entry, size: 0 }, 'BROKEN_SYMLINK', 'a symlink to nothing');
        } else {
          this.#fail({ ...entry, size: 0 }, errorCode(err), describeError(err));
        }
        return undefined;
      }
      if (info.isDirectory()) {
        this.#skip({ ...entry, size: 0 }, 'symlink', 'a symlink to a directory: not followed');
        return undefined;
      }
      if (!this.#followSymlinksOutside && !(await this.#targetInside(entry))) return undefined;
    }
    if (!info.isFile()) {
      // Never opened: reading a FIFO would block until someone writes to it.
      this.#skip({ ...entry, size: 0 }, 'special', `a ${kindOf(info)}: not uploaded`);
      return undefined;
    }
    return info;
  }

  /**
   * Whether a followed symlink's target (every link resolved) lies inside FILES; if not,
   * reports it as skipped (issue 17: a link to /etc/passwd in the old tree uploaded it).
   */
  async #targetInside(entry: SourceEntry): Promise<boolean> {
    let target: string;
    let files: string;
    try {
      this.#realFiles ??= realpath(this.#files);
      [target, files] = await Promise.all([realpath(entry.path), this.#realFiles]);
    } catch (err) {
      this.#unreadable(entry, err);
      return false;
    }
    const relative = path.relative(files, target);
    if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
      this.#skip(
        { ...entry, size: 0 },
        'symlink-outside',
        `a symlink to ${target}, outside FILES: not uploaded ` +
          '(--follow-symlinks-outside uploads it)',
      );
      return false;
    }
    return true;
  }

  #unreadable(entry: SourceEntry, err: unknown): void {
    const code = errorCode(err);
    if (code !== 'ENOENT') {
      this.#fail({ ...entry, size: 0 }, code, `cannot read it: ${describeError(err)}`);
    } else {
      this.#skip({ ...entry, size: 0 }, 'vanished', 'deleted before it was uploaded');
    }
  }

  /** An entry not to be read: excluded, or its path is not UTF-8 (see walkSource). */
  #leftOut(entry: SourceEntry): void {
    const file = { path: entry.path, name: entry.name, size: 0 };
    const what = entry.directory ? 'a directory' : 'the file';
    if (entry.excludedBy !== undefined) {
      const unread = entry.directory ? ': nothing under it was read' : '';
      this.#skip(file, 'excluded', `${what} matches --exclude ${entry.excludedBy}${unread}`);
      return;
    }
    this.#notUtf8 += 1;
    // No rerun can help: say what can (issue 17).
    const under = entry.directory ? ': nothing under it was migrated' : '';
    this.#fail(
      { ...file, pathHex: entry.pathHex },
      'NOT_UTF8',
      `the name is not valid UTF-8, which filetracker names must be${under}; ` +
        `rename ${what === 'the file' ? 'it' : 'the directory'}, or leave it out with --exclude`,
    );
  }

  /**
   * Skips `file` (and says so) if an earlier run finished it or, when asked to check, the
   * server has it at this version or newer. `sizeKnown: false` (a 2.x source that tells
   * no size) compares versions only.
   */
  async #finishedBefore(file: LocalFile, sizeKnown = true): Promise<boolean> {
    const finished = this.#state?.has(file.name, file.version) ?? false;
    if (finished && !this.#checkFinished) {
      this.#skip(file, 'already-done', 'finished by an earlier run (state file)');
      return true;
    }
    if (this.#checkServer || finished) {
      const remote = await this.#retrying(file, (signal) => this.#statOnServer(file, signal));
      this.#transientStreak = 0;
      if (
        remote &&
        remote.version === file.version &&
        (!sizeKnown || remote.logicalSize === file.size)
      ) {
        // A state file being rebuilt (checkFinished) learns it again.
        this.#state?.record(file.name, file.version);
        this.#skip(file, 'already-there', 'already on the server at this version');
        return true;
      }
      if (remote && remote.version > file.version) {
        this.#state?.record(file.name, file.version);
        this.#skip(
          file,
          'server-newer',
          `the server has the newer version ${formatVersion(remote.version)}`,
        );
        return true;
      }
    }
    return false;
  }

  /** `opened`: the small file's descriptor (see openSmallFile), closed here in any case. */
  async #upload(file: LocalFile, before: Stats, opened?: number): Promise<void> {
    let unread = opened;
    try {
      await this.#uploadOpened(file, before, () => {
        const fd = unread;
        unread = undefined;
        return fd;
      });
    } finally {
      if (unread !== undefined) closeQuietly(unread);
    }
  }

  /** {@link #upload}; `take` hands over the small file's open descriptor, if any. */
  async #uploadOpened(
    file: LocalFile,
    before: Stats,
    take: () => number | undefined,
  ): Promise<void> {
    if (await this.#finishedBefore(file)) return;
    if (this.#mode === 'dry-run') {
      this.#done(file);
      return;
    }
    let stored: number;
    try {
      // Read once, before the first attempt: a small file's bytes (one or two thread-pool
      // calls, see local-file.ts), a larger one streamed from its path by the client.
      const source =
        file.size < SMALL_FILE_BYTES
          ? await readSmallFile(file.path, file.size, this.#followSymlinks, take())
          : file.path;
      stored = await this.#retrying(file, (signal) =>
        this.#client.put(file.name, source, {
          version: file.version,
          signal,
          ...(this.#gzipLevel !== undefined && { gzipLevel: this.#gzipLevel }),
        }),
      );
    } catch (err) {
      // A file rewritten between the client's hashing pass and its upload pass is refused
      // by the server (checksum mismatch): say what really happened.
      if (this.#controller.signal.aborted) throw err;
      const changed = this.#changedSince(file.path, before);
      if (changed !== undefined) {
        this.#fail(file, 'CHANGED', `${changed} while it was uploaded: run again to upload it`);
        return;
      }
      if (this.#deletedOnServer(file, err)) return;
      throw err;
    }
    this.#transientStreak = 0;
    const changed = this.#changedSince(file.path, before);
    if (changed !== undefined) {
      this.#fail(file, 'CHANGED', `${changed} while it was uploaded: run again to upload it`);
      return;
    }
    this.#acknowledged(file, stored);
  }

  /**
   * Whether `err` is the server's 410 for a name a client deleted during an online
   * migration; if so, `file` is finished: the server refuses this version for as long as it
   * keeps the tombstone.
   */
  #deletedOnServer(file: LocalFile, err: unknown): boolean {
    if (!(err instanceof FiletrackerError && err.code === 'DELETED')) return false;
    this.#transientStreak = 0;
    this.#state?.record(file.name, file.version, true);
    this.#skip(
      file,
      'deleted-on-server',
      'deleted on the server during the migration: not brought back',
    );
    return true;
  }

  /** Records `file` as done once the server answered the version it now stores. */
  #acknowledged(file: LocalFile, stored: number): void {
    if (stored < file.version) {
      this.#fail(
        file,
        'PROTOCOL_ERROR',
        `the server answered version ${formatVersion(stored)}, older than the ${formatVersion(file.version)} sent`,
      );
      return;
    }
    this.#state?.record(file.name, file.version);
    if (stored > file.version) {
      this.#skip(
        file,
        'server-newer',
        `the server kept its newer version ${formatVersion(stored)}`,
      );
      return;
    }
    this.#done(file);
  }

  /**
   * Copies one file of a 2.x source (see sources/copy-source.ts): its stored gzip goes to
   * the server unchanged, under its name, with its version. The version is asked first
   * only when something needs it before the bytes (a resume state with entries, a check
   * on the server, a dry run, a verify); a first run learns it from the read itself, one
   * request per file. A file rewritten at the source meanwhile is copied at the version
   * read; a newer version on the server wins, as for a tree.
   */
  async #copy(entry: SourceEntry, from: CopyEntry): Promise<void> {
    const file: LocalFile = { path: entry.path, name: entry.name, size: 0, version: 0 };
    const vanished = (): void =>
      this.#skip(file, 'vanished', 'deleted at the source before it was copied');
    try {
      const statFirst =
        this.#mode !== 'upload' || this.#checkServer || (this.#state?.size ?? 1) > 0;
      if (statFirst) {
        const known = await this.#retrying(file, (signal) => from.stat(signal));
        if (known === null) return vanished();
        file.version = known.version;
        file.size = known.logicalSize ?? 0;
        if (this.#mode === 'verify') {
          await this.#verify(file, known.logicalSize !== undefined, () =>
            this.#sourceDigest(file, from),
          );
          return;
        }
        if (await this.#finishedBefore(file, known.logicalSize !== undefined)) return;
        if (this.#mode === 'dry-run') return this.#done(file);
      }
      let stored: number;
      try {
        const copied = await this.#retrying(file, async (signal) => {
          const opened = await from.open(signal);
          if (opened === null) return null;
          file.version = opened.version;
          file.size = opened.logicalSize ?? file.size;
          let answer: Awaited<ReturnType<NonNullable<MigrateClient['putStored']>>>;
          try {
            answer = await this.#client.putStored!(file.name, opened, {
              version: opened.version,
              signal,
              ...(this.#gzipLevel !== undefined && { gzipLevel: this.#gzipLevel }),
            });
          } finally {
            // Read to its end by a PUT that went well; else the source's answer is dropped.
            if (!Buffer.isBuffer(opened.data)) opened.data.destroy();
          }
          if (answer.logicalSize !== undefined) file.size = answer.logicalSize;
          return answer.version;
        });
        if (copied === null) return vanished();
        stored = copied;
      } catch (err) {
        if (!this.#controller.signal.aborted && this.#deletedOnServer(file, err)) return;
        throw err;
      }
      this.#transientStreak = 0;
      this.#acknowledged(file, stored);
    } catch (err) {
      if (this.#controller.signal.aborted) {
        this.#skip(file, 'interrupted', 'the run was interrupted');
      } else {
        this.#requestFailed(file, err);
      }
    }
  }

  /** The sha256 of a source file's content (`--verify=digest`). */
  async #sourceDigest(file: LocalFile, from: CopyEntry): Promise<string> {
    return this.#retrying(file, async (signal) => {
      const opened = await from.open(signal);
      if (opened === null) return 'deleted at the source';
      if (opened.digest !== undefined && opened.gzip) {
        if (!Buffer.isBuffer(opened.data)) opened.data.destroy();
        return opened.digest;
      }
      const data = Buffer.isBuffer(opened.data) ? Readable.from([opened.data]) : opened.data;
      const source: ByteSource = opened.gzip ? [data, createGunzip()] : data;
      return (await sha256OfStream(source, signal)).digest;
    });
  }

  /**
   * How the file changed since `before`, or `undefined` if it did not. Asked on the main
   * thread: the file was read moments ago, so the lookup finds it in the kernel's caches
   * and costs a few microseconds here, where a trip through the thread pool costs more
   * and queues behind the target's fsyncs (with `--into`, one of about fourteen trips per
   * small file: issue 15).
   */
  #changedSince(path: string, before: Stats): string | undefined {
    let after: Stats;
    try {
      after = this.#followSymlinks ? fs.statSync(path) : fs.lstatSync(path);
    } catch (err) {
      return errorCode(err) === 'ENOENT' ? 'deleted' : `became unreadable (${errorCode(err)})`;
    }
    if (after.ino !== before.ino) return 'replaced';
    if (after.size !== before.size) return `resized from ${before.size} to ${after.size} bytes`;
    if (after.mtimeMs !== before.mtimeMs) return 'modified';
    return undefined;
  }

  /**
   * HEAD of the file's name, not following a redirect: what the server's own store holds.
   * A server in migration mode redirects a name its store lacks to the old tree, whose
   * answer (the very file being migrated) would make the file look migrated.
   */
  #statOnServer(file: LocalFile, signal: AbortSignal): ReturnType<MigrateClient['stat']> {
    return this.#client.stat(file.name, { signal, followRedirects: false });
  }

  /**
   * Compares `file` with what the server has. `sizeKnown: false` (a 2.x source that tells
   * no size) leaves the size out; `localDigest` gives the content's sha256 for
   * `--verify=digest` when `file.path` is not a local file.
   */
  async #verify(
    file: LocalFile,
    sizeKnown = true,
    localDigest = async (): Promise<string> =>
      (await sha256OfFile(file.path, this.#controller.signal)).digest,
  ): Promise<void> {
    const remote = await this.#retrying(file, (signal) => this.#statOnServer(file, signal));
    this.#transientStreak = 0;
    if (remote === null) {
      this.#diff(file, 'missing', 'not on the server');
      return;
    }
    if (remote.version !== file.version) {
      this.#diff(
        file,
        'version',
        `the server has version ${formatVersion(remote.version)}, the file is ${formatVersion(file.version)}`,
      );
      return;
    }
    if (sizeKnown && remote.logicalSize !== file.size) {
      this.#diff(
        file,
        'size',
        `the server has ${remote.logicalSize} bytes, the file ${file.size} bytes`,
      );
      return;
    }
    if (this.#verifyDigest) {
      const local = await localDigest();
      const theirs = await this.#retrying(file, async (signal) => {
        const answer = await this.#client.get(file.name, {
          signal,
          expectedVersion: file.version,
        });
        return sha256OfStream(answer.stream, signal);
      });
      if (local !== theirs.digest) {
        this.#diff(
          file,
          'content',
          `the content differs (sha256 ${theirs.digest.slice(0, 12)}… on the server, ` +
            `${local.slice(0, 12)}… here)`,
        );
        return;
      }
    }
    this.#done(file);
  }

  /** Runs `request`, again after a transient failure, up to `retries` times, with backoff. */
  async #retrying<T>(file: LocalFile, request: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = this.#controller.signal;
    for (let attempt = 0; ; attempt++) {
      try {
        signal.throwIfAborted();
        return await request(signal);
      } catch (err) {
        if (signal.aborted || attempt >= this.#retries || !isTransient(err)) throw err;
        const delayMs = backoffMs(attempt, this.#retryBaseMs);
        this.#retryCount += 1;
        this.emit('file-retry', {
          path: file.path,
          name: file.name,
          attempt: attempt + 1,
          code: errorCode(err),
          reason: describeError(err),
          delayMs,
        });
        await delay(delayMs, undefined, { signal });
      }
    }
  }

  #requestFailed(file: LocalFile, err: unknown): void {
    const status = err instanceof FiletrackerError ? err.status : undefined;
    this.#fail(file, errorCode(err), describeError(err), status);
    if (!isTransient(err)) {
      this.#transientStreak = 0;
      return;
    }
    this.#transientStreak += 1;
    if (this.#transientStreak >= GIVE_UP_AFTER_FAILURES) {
      this.abort(
        `the last ${GIVE_UP_AFTER_FAILURES} files failed even after retries ` +
          `(last: ${describeError(err)}): is the server up? Run the same command again ` +
          'to resume',
      );
    }
  }

  #unreadableDir(err: NodeJS.ErrnoException): void {
    const path = err.path ?? this.#files;
    this.emit('file-start', { path, name: '' });
    this.#fail(
      { path, name: '', size: 0 },
      'WALK_FAILED',
      `cannot read this directory (${describeError(err)}); nothing under it was migrated: ` +
        'fix its permissions and run again',
    );
  }

  #walkFailed(err: unknown): void {
    const where = (err as { path?: unknown }).path;
    const path = typeof where === 'string' ? where : this.#files;
    this.emit('file-start', { path, name: '' });
    this.#fail(
      { path, name: '', size: 0 },
      'WALK_FAILED',
      `the walk stopped here (${describeError(err)}); files after it were not reached: ` +
        'fix the cause and run again',
    );
  }

  /** Counts the tree alongside the uploads, for the progress totals. */
  async #scan(signal: AbortSignal): Promise<void> {
    const progress: ScanProgress = { files: 0, bytes: 0, done: false };
    let lastEmitMs = 0;
    try {
      const exclude = excludeMatcher(this.#exclude);
      const walk =
        this.#from?.entries(signal) ??
        walkSource(this.#files, this.#root, { signal, onUnreadable: () => {}, exclude });
      for await (const entry of walk) {
        progress.files += 1;
        // A 2.x source tells no sizes in its listing: the total counts files only.
        if (entry.excludedBy !== undefined || entry.pathHex !== undefined || entry.copy) continue;
        try {
          let info = await lstat(entry.path);
          if (info.isSymbolicLink() && this.#followSymlinks) info = await stat(entry.path);
          if (info.isFile()) progress.bytes += info.size;
        } catch {
          // vanished or unreadable: the upload reports it
        }
        const now = Date.now();
        if (now - lastEmitMs >= 200) {
          lastEmitMs = now;
          this.emit('scan', { ...progress });
        }
      }
      progress.done = true;
    } catch (err) {
      if (!signal.aborted) progress.error = describeError(err);
    }
    this.emit('scan', { ...progress });
  }

  #done(file: LocalFile): void {
    add(this.#processed, file.size);
    if (this.#mode === 'upload') add(this.#uploaded, file.size);
    else if (this.#mode === 'dry-run') add(this.#wouldUpload, file.size);
    else add(this.#verified, file.size);
    this.emit('file-done', file);
  }

  #skip(file: Omit<LocalFile, 'version'>, reason: SkipReason, detail: string): void {
    add(this.#processed, file.size);
    add(this.#skipped, file.size);
    this.#byReason[reason] += 1;
    const skipped: SkippedFile = {
      path: file.path,
      name: file.name,
      size: file.size,
      reason,
      detail,
    };
    if (REPORTED_SKIPS.has(reason)) {
      this.#skippedFilesSeen += 1;
      if (this.#skippedFiles.length < LIST_CAP) this.#skippedFiles.push(skipped);
    }
    this.emit('file-skip', skipped);
  }

  #fail(
    file: Omit<LocalFile, 'version'> & BytePath,
    code: string,
    reason: string,
    status?: number,
  ): void {
    add(this.#processed, file.size);
    add(this.#failed, file.size);
    const failed: FailedFile = {
      path: file.path,
      name: file.name,
      ...(file.pathHex === undefined ? {} : { pathHex: file.pathHex }),
      size: file.size,
      code,
      ...(status === undefined ? {} : { status }),
      reason,
    };
    this.#failuresSeen += 1;
    if (this.#failures.length < LIST_CAP) this.#failures.push(failed);
    this.emit('file-fail', failed);
  }

  #diff(file: LocalFile, kind: Difference['kind'], detail: string): void {
    add(this.#processed, file.size);
    const difference: Difference = { path: file.path, name: file.name, kind, detail };
    this.#differencesSeen += 1;
    if (this.#differences.length < LIST_CAP) this.#differences.push(difference);
    this.emit('file-diff', difference);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
