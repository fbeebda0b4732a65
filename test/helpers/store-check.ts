import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { MetaDb, type BlobRecord } from '@filetracker/server';

const DIGEST = /^[0-9a-f]{64}$/;

export interface StoreCheckOptions {
  /**
   * The open database of an in-process store (read while the server is idle). Without it,
   * `<dir>/meta` is opened, so the process that owned the store must have stopped.
   */
  meta?: MetaDb;
}

/** What {@link checkStore} found besides the problems, for tests that want numbers. */
export interface StoreCheckResult {
  problems: string[];
  /** Number of links per digest. */
  links: Map<string, number>;
  /** Digests of the blob files present. */
  blobs: Set<string>;
  /** Meta records per digest. */
  records: Map<string, BlobRecord>;
  /** Entries left in ft-tmp/. */
  tmp: string[];
}

/**
 * Checks the on-disk invariants of DESIGN.md on an idle store: every link is a symlink to an
 * existing blob; every blob is linked, gunzips to content whose sha256 is its name, and has
 * a record whose refcount equals its number of links and whose sizes are true; ft-tmp/ is
 * empty. Returns the problems found (none: an empty list).
 */
export async function checkStore(
  dir: string,
  options: StoreCheckOptions = {},
): Promise<StoreCheckResult> {
  const problems: string[] = [];
  const links = new Map<string, number>();
  const blobs = new Set<string>();
  const records = new Map<string, BlobRecord>();
  const linksRoot = path.join(dir, 'links');
  const blobsRoot = path.join(dir, 'blobs');

  for await (const link of walk(linksRoot)) {
    const rel = path.relative(linksRoot, link);
    const st = await lstat(link);
    if (!st.isSymbolicLink()) {
      problems.push(`links/${rel} is not a symlink`);
      continue;
    }
    const target = await readlink(link);
    const digest = path.basename(target);
    if (!DIGEST.test(digest)) {
      problems.push(`links/${rel} points at ${target}, not a digest`);
      continue;
    }
    links.set(digest, (links.get(digest) ?? 0) + 1);
    const blob = path.join(blobsRoot, digest.slice(0, 2), digest);
    if (path.resolve(path.dirname(link), target) !== blob) {
      problems.push(`links/${rel} -> ${target} does not resolve to blobs/${digest.slice(0, 2)}/`);
    }
    const blobStat = await stat(blob).catch(() => null);
    if (!blobStat?.isFile()) problems.push(`links/${rel} points at a missing blob ${digest}`);
  }

  const meta = options.meta ?? (await openMeta(dir, problems));
  try {
    if (meta) for await (const [digest, record] of meta.blobs()) records.set(digest, record);
  } finally {
    if (meta && !options.meta) await meta.close();
  }

  for await (const file of walk(blobsRoot)) {
    const rel = path.relative(blobsRoot, file);
    const digest = path.basename(file);
    if (!DIGEST.test(digest) || path.dirname(rel) !== digest.slice(0, 2)) {
      problems.push(`blobs/${rel} is not blobs/<first 2 hex>/<sha256>`);
      continue;
    }
    blobs.add(digest);
    if (!links.has(digest)) problems.push(`blob ${digest} is an orphan (no link)`);
    const st = await lstat(file);
    if (!st.isFile()) {
      problems.push(`blobs/${rel} is not a regular file`);
      continue;
    }
    const content = await hashGzipFile(file);
    if (content instanceof Error) {
      problems.push(`blob ${digest} is not valid gzip: ${content.message}`);
      continue;
    }
    if (content.digest !== digest) problems.push(`blob ${digest} holds content ${content.digest}`);
    const record = records.get(digest);
    if (record) {
      if (record.logicalSize !== content.size) {
        problems.push(`blob ${digest}: logicalSize ${record.logicalSize}, content ${content.size}`);
      }
      if (record.storedSize !== st.size) {
        problems.push(`blob ${digest}: storedSize ${record.storedSize}, file ${st.size}`);
      }
    }
  }

  for (const [digest, count] of links) {
    const record = records.get(digest);
    if (!record) problems.push(`blob ${digest} has ${count} links and no meta record`);
    else if (record.refs !== count) {
      problems.push(`blob ${digest}: refs ${record.refs}, links ${count}`);
    }
  }
  for (const [digest, record] of records) {
    if (!links.has(digest))
      problems.push(`meta record of ${digest} (refs ${record.refs}) has no link`);
    if (!blobs.has(digest)) problems.push(`meta record of ${digest} has no blob file`);
  }

  const tmp = await readdir(path.join(dir, 'ft-tmp')).catch(() => [] as string[]);
  for (const entry of tmp) problems.push(`ft-tmp/${entry} left behind`);

  return { problems, links, blobs, records, tmp };
}

async function openMeta(dir: string, problems: string[]): Promise<MetaDb | undefined> {
  const location = path.join(dir, 'meta');
  if (!(await stat(location).catch(() => null))?.isDirectory()) {
    problems.push('meta/ is missing');
    return undefined;
  }
  return MetaDb.open(location);
}

/** Every non-directory entry under `root`, recursively (nothing if `root` is absent). */
async function* walk(root: string): AsyncGenerator<string> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const p = path.join(root, entry.name);
    if (entry.isDirectory()) yield* walk(p);
    else yield p;
  }
}

async function hashGzipFile(file: string): Promise<{ digest: string; size: number } | Error> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      createReadStream(file),
      createGunzip(),
      async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) {
          hash.update(chunk);
          size += chunk.length;
        }
      },
    );
  } catch (err) {
    return err as Error;
  }
  return { digest: hash.digest('hex'), size };
}
