import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MetaDb, type BlobRecord } from '@filetracker/server';

const DIGEST = /^[0-9a-f]{64}$/;

/** A name as `links/` holds it. */
export interface LinkInfo {
  digest: string;
  /** The link's own mtime, in whole seconds. */
  version: number;
}

/** What {@link inspectStore} saw of an idle store. */
export interface StoreInspection {
  /** Name (`/a/b`) -> link. */
  links: Map<string, LinkInfo>;
  /** Digests of blob files present. */
  blobs: Set<string>;
  /** meta/ records per digest. */
  records: Map<string, BlobRecord>;
  /** Entries left in ft-tmp/. */
  tmp: string[];
  /** Every broken invariant, one line each; empty when the store is consistent. */
  problems: string[];
}

async function* walk(
  root: string,
  rel = '',
  skip: (rel: string) => boolean = () => false,
): AsyncGenerator<[string, 'dir' | 'other']> {
  let entries;
  try {
    entries = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (skip(r)) continue;
    if (e.isDirectory()) {
      yield [r, 'dir'];
      yield* walk(root, r, skip);
    } else {
      yield [r, 'other'];
    }
  }
}

/**
 * Walks `links/` and `blobs/` and reads `meta/` of a store no process holds, and checks
 * DESIGN.md invariant 4 directly, without trusting ft-recover: every link is a symlink to a
 * blob file that exists and gunzips to content hashing to its name; every blob has a link;
 * every record's refcount equals its number of links and its sizes are true; no record
 * lacks its blob; ft-tmp/ is empty. Our own check (test/helpers/store-check.ts is being
 * written by a colleague), kept small on purpose.
 */
export async function inspectStore(dir: string): Promise<StoreInspection> {
  const problems: string[] = [];
  const links = new Map<string, LinkInfo>();
  const linkCount = new Map<string, number>();
  const linksRoot = path.join(dir, 'links');
  const blobsRoot = path.join(dir, 'blobs');

  for await (const [rel, kind] of walk(linksRoot)) {
    if (kind === 'dir') continue;
    const abs = path.join(linksRoot, rel);
    const st = await lstat(abs);
    if (!st.isSymbolicLink()) {
      problems.push(`links/${rel} is not a symlink`);
      continue;
    }
    const target = await readlink(abs);
    const digest = path.basename(target);
    if (!DIGEST.test(digest)) {
      problems.push(`links/${rel} -> ${target} does not name a digest`);
      continue;
    }
    const blob = path.join(blobsRoot, digest.slice(0, 2), digest);
    if (path.resolve(path.dirname(abs), target) !== blob) {
      problems.push(`links/${rel} -> ${target} does not resolve into blobs/`);
    }
    if (!(await stat(blob).catch(() => null))?.isFile()) {
      problems.push(`links/${rel} dangles (blob ${digest} missing)`);
    }
    links.set('/' + rel, { digest, version: Math.floor(st.mtimeMs / 1000) });
    linkCount.set(digest, (linkCount.get(digest) ?? 0) + 1);
  }

  const records = new Map<string, BlobRecord>();
  const meta = await MetaDb.open(path.join(dir, 'meta'));
  try {
    for await (const [digest, record] of meta.blobs()) records.set(digest, record);
  } finally {
    await meta.close();
  }

  const blobs = new Set<string>();
  for await (const [rel, kind] of walk(blobsRoot)) {
    if (kind === 'dir') continue;
    const digest = path.basename(rel);
    if (!DIGEST.test(digest) || path.dirname(rel) !== digest.slice(0, 2)) {
      problems.push(`blobs/${rel} is not blobs/<2 hex>/<sha256>`);
      continue;
    }
    blobs.add(digest);
    if (!linkCount.has(digest)) problems.push(`blob ${digest} is an orphan (no link)`);
    const gz = await readFile(path.join(blobsRoot, rel));
    let content: Buffer;
    try {
      content = gunzipSync(gz);
    } catch {
      problems.push(`blob ${digest} is not valid gzip`);
      continue;
    }
    if (createHash('sha256').update(content).digest('hex') !== digest) {
      problems.push(`blob ${digest} does not hash to its name`);
    }
    const record = records.get(digest);
    if (record && (record.logicalSize !== content.length || record.storedSize !== gz.length)) {
      problems.push(
        `blob ${digest}: record sizes ${record.logicalSize}/${record.storedSize}, ` +
          `actual ${content.length}/${gz.length}`,
      );
    }
  }

  for (const [digest, count] of linkCount) {
    const record = records.get(digest);
    if (!record) problems.push(`blob ${digest}: ${count} links, no record`);
    else if (record.refs !== count)
      problems.push(`blob ${digest}: refs ${record.refs}, links ${count}`);
  }
  for (const digest of records.keys()) {
    if (!blobs.has(digest)) problems.push(`record of ${digest} has no blob file`);
    if (!linkCount.has(digest)) problems.push(`record of ${digest} has no link`);
  }

  const tmp = await readdir(path.join(dir, 'ft-tmp')).catch(() => [] as string[]);
  for (const entry of tmp) problems.push(`ft-tmp/${entry} left behind`);
  return { links, blobs, records, tmp, problems };
}

/**
 * Links under `links/` whose blob file is missing: checkable while a server runs (unlike
 * {@link inspectStore}, it needs no meta/ access).
 */
export async function danglingLinks(dir: string): Promise<string[]> {
  const out: string[] = [];
  const linksRoot = path.join(dir, 'links');
  for await (const [rel, kind] of walk(linksRoot)) {
    if (kind === 'dir') continue;
    const abs = path.join(linksRoot, rel);
    if (!(await lstat(abs)).isSymbolicLink()) continue;
    if (!(await stat(abs).catch(() => null))?.isFile()) out.push(rel);
  }
  return out;
}

/**
 * Every entry under `root` (recursively) with its type, size and mtime, except the
 * subtrees named in `skip` (relative paths): for proving nothing appeared or changed.
 */
export async function snapshotTree(root: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  for await (const [rel, kind] of walk(root, '', (r) => skip.includes(r))) {
    const st = await lstat(path.join(root, rel));
    out.push(`${kind === 'dir' ? 'd' : 'f'} ${rel} ${kind === 'dir' ? '' : st.size} ${st.mtimeMs}`);
  }
  return out.sort();
}
