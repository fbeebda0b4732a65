import type { StoredBody } from '@filetracker/shared-protocol';
import type { SourceEntry } from '../source.js';

/**
 * The filetracker 2.x side of ft-migrate (`--from URL`, `--from-store DIR`), beside the
 * 1.x tree walk (source.ts), so that the Migrator stays one engine: it takes a
 * `CopySource`'s entries from its bounded queue as it takes a tree's, and copies each
 * entry that carries a {@link CopyEntry} (`entry.copy`) with the same resume, verify,
 * report and progress as a tree's file.
 *
 * The contract every source keeps:
 * - `entries()` streams every file of the source once (memory flat in its size), named
 *   absolutely (`/a/b`), in no particular order; an entry without `copy` is one the
 *   Migrator reports without reading (a name that is not UTF-8: `pathHex`). It may be
 *   called twice at once: the progress count runs beside the copy.
 * - A file gone since it was listed: `stat` and `open` resolve `null` (skipped, `vanished`).
 * - `open` gives the stored bytes unchanged (the gzip), the version of those very bytes (a
 *   file rewritten since it was listed: the new one), and what the source knows of the
 *   content (digest, logical size); the target verifies them.
 * - Failures reject: `FiletrackerError` (with its status) or got's `RequestError` from a
 *   server, errno errors from disk; the Migrator retries the transient ones, reopening.
 * - `close()` releases what the source holds; idempotent.
 */
export interface CopySource {
  /** The source for people, the report and the state file: its URL, or its directory. */
  readonly location: string;
  entries(signal: AbortSignal): AsyncIterable<SourceEntry>;
  close(): Promise<void>;
}

/** What a source says of a file without reading it. */
export interface CopyStat {
  version: number;
  /** The content's size, when the source tells it without reading the file. */
  logicalSize: number | undefined;
}

/** A file being read from a source: the bytes as stored, and their version. */
export type OpenedCopy = StoredBody & { version: number };

/** One file of a 2.x source (`SourceEntry.copy`). */
export interface CopyEntry {
  /** The version (and size, if cheap), without reading the file: for skips and compares. */
  stat(signal: AbortSignal): Promise<CopyStat | null>;
  /** The file's bytes as stored; the caller reads or destroys `data`. */
  open(signal: AbortSignal): Promise<OpenedCopy | null>;
}
