import { closeSync, readSync, statSync, type Stats } from 'node:fs';
import type { RequestListener } from 'node:http';
import { LRUCache } from 'lru-cache';
import { memoryFirstListener, type MemoryAnswer } from '@filetracker/runtime';
import {
  HEADER,
  MEDIA_TYPE,
  formatHttpDate,
  legacyVersion,
  parseLegacyPath,
} from '@filetracker/shared-protocol';
import { buildLegacyApp, legacyContext, type LegacyAppOptions, type LegacyContext } from './app.js';
import type { RootGuard } from './root-guard.js';

/** Files up to this size are answered from memory. */
const SMALL_FILE_BYTES = 256 * 1024;

/** A small file in memory: its answer, and what it is checked against the disk by. */
interface CachedFile extends MemoryAnswer {
  /** `FT_ROOT/files/{name}` as the request path named it (not resolved). */
  joined: string;
  body: Buffer;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** When it was last checked against the disk (performance.now()). */
  checkedAt: number;
}

/** Options of {@link createLegacyListener}. */
export interface LegacyListenerOptions extends LegacyAppOptions {
  /**
   * How long (ms) a cached small file is served without checking it against the disk
   * again, as lighttpd's stat cache trusts a stat for a second. 0 (the default here; the
   * command line's default is 1000) checks on every request.
   */
  statCacheMs?: number;
}

function sameFile(file: CachedFile, st: Stats): boolean {
  return (
    file.ino === st.ino &&
    file.dev === st.dev &&
    file.size === st.size &&
    file.mtimeMs === st.mtimeMs
  );
}

/**
 * Reads `real` whole and describes it, or undefined when it is not the file `st` (taken
 * through the unresolved path) describes: it changed in between, so the caller gives up.
 */
function readSmall(
  guard: RootGuard,
  joined: string,
  real: string,
  st: Stats,
  now: number,
): CachedFile | undefined {
  const opened = guard.openSync(real);
  if (opened === undefined) return undefined;
  const { fd, stats: own } = opened;
  try {
    const body = Buffer.allocUnsafe(own.size);
    if (readSync(fd, body, 0, own.size, 0) !== own.size) return undefined;
    // As the Koa path answers (app.ts, sendOpened).
    const headers = {
      [HEADER.contentType]: MEDIA_TYPE.file,
      [HEADER.contentLength]: String(own.size),
      [HEADER.lastModified]: formatHttpDate(legacyVersion(own.mtimeMs)),
    };
    const file: CachedFile = {
      status: 200,
      headers,
      joined,
      body,
      dev: own.dev,
      ino: own.ino,
      size: own.size,
      mtimeMs: own.mtimeMs,
      checkedAt: now,
    };
    return sameFile(file, st) ? file : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * The request listener of ft-legacy-static: small files from memory, everything else
 * through the Koa app.
 *
 * Judges fetch thousands of small test files through the redirect. Measured with wrk (8
 * connections, 3,000 files of 1-10 KiB), koa-send's per-request work (an async realpath,
 * stat, open, a read stream, close) served 4,700 req/s where lighttpd served 123,000. Here a
 * GET of a small file is answered from a cache validated by device, inode, size and mtime
 * with one synchronous stat, at most every `statCacheMs` (on every request when 0), so a
 * file changed on disk is served stale for at most that long, and never one from outside
 * FT_ROOT; a file not in the cache is resolved with realpath first (the same containment
 * check as the Koa path). Skipping the stat within a second, as lighttpd does, gave 10-15%
 * more small GETs at 8 connections. Anything unusual (errors, directories, large files,
 * paths the grammar refuses) goes to the Koa app unchanged.
 */
export function createLegacyListener(options: LegacyListenerOptions): RequestListener {
  const context = legacyContext(options);
  const koa = buildLegacyApp(context).callback();
  const files = new SmallFiles(context, options.statCacheMs ?? 0);
  return memoryFirstListener(
    (_req, rawPath, now) => files.lookup(rawPath, now),
    (req, url, status, bodyBytes, ms) => {
      context.stats.requests++;
      context.record(req.method!, url, status, bodyBytes, ms);
    },
    koa,
  );
}

/**
 * Small files in memory, by request path (the raw path as sent: a path seen before is not
 * parsed again). An LRU bounded by bytes decides what is kept; a plain Map of the same
 * entries answers requests while their stat is trusted, so a hit costs one Map lookup and
 * the LRU learns of a file's use when its stat is taken again (every `statCacheMs`).
 * Profiled at 60,000 req/s, the LRU's per-hit bookkeeping and the parse and join of the
 * path were 5% of the worker's time.
 */
class SmallFiles {
  readonly #context: LegacyContext;
  readonly #statCacheMs: number;
  readonly #trusted = new Map<string, CachedFile>();
  readonly #lru: LRUCache<string, CachedFile>;

  constructor(context: LegacyContext, statCacheMs: number) {
    this.#context = context;
    this.#statCacheMs = statCacheMs;
    const trusted = this.#trusted;
    this.#lru = new LRUCache<string, CachedFile>({
      maxSize: 64 * 1024 * 1024,
      sizeCalculation: (f) => f.body.length || 1,
      dispose(file, rawPath) {
        if (trusted.get(rawPath) === file) trusted.delete(rawPath);
      },
    });
  }

  /** The small file `rawPath` names, checked as `statCacheMs` says; undefined: ask Koa. */
  lookup(rawPath: string, now: number): CachedFile | undefined {
    const file = this.#trusted.get(rawPath);
    if (file !== undefined && now - file.checkedAt < this.#statCacheMs) return file;
    return this.#check(rawPath, now);
  }

  /**
   * The file `rawPath` names, checked against the disk now; undefined when it is not a small
   * file in FT_ROOT (or the path is not a file's).
   *
   * One stat through the path as given: a file this path led to before, unchanged (same
   * device, inode, size and mtime), was inside FT_ROOT then and is the same file now, so it
   * is served without resolving the path again (a readlink per component). Anything else is
   * resolved and checked against the roots, as the Koa path does.
   */
  #check(rawPath: string, now: number): CachedFile | undefined {
    let file = this.#lru.get(rawPath);
    let joined = file?.joined;
    if (joined === undefined) {
      let target;
      try {
        target = parseLegacyPath(rawPath);
      } catch {
        return undefined;
      }
      if (target.kind !== 'file') return undefined;
      joined = this.#context.guard.pathOf(target.components);
    }
    let st: Stats | undefined;
    try {
      st = statSync(joined, { throwIfNoEntry: false });
    } catch {
      st = undefined; // ENOTDIR, EACCES, ELOOP...: the Koa path answers those
    }
    if (!st || !st.isFile() || st.size > SMALL_FILE_BYTES) {
      if (file !== undefined) this.#lru.delete(rawPath);
      return undefined;
    }
    if (file !== undefined && sameFile(file, st)) {
      file.checkedAt = now;
      return file;
    }
    const { guard } = this.#context;
    const real = guard.resolveSync(joined);
    file = real === undefined ? undefined : readSmall(guard, joined, real, st, now);
    if (file === undefined) {
      this.#lru.delete(rawPath);
      return undefined;
    }
    this.#lru.set(rawPath, file);
    this.#trusted.set(rawPath, file);
    return file;
  }
}
