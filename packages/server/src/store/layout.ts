import { randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * The on-disk layout of DESIGN.md: the Python 2.x layout for `blobs/` and `links/`, plus
 * our `meta/` (classic-level) and `ft-tmp/` (uploads and links in flight).
 */
export interface StoreLayout {
  root: string;
  blobs: string;
  links: string;
  meta: string;
  tmp: string;
}

export function storeLayout(root: string): StoreLayout {
  const abs = path.resolve(root);
  return {
    root: abs,
    blobs: path.join(abs, 'blobs'),
    links: path.join(abs, 'links'),
    meta: path.join(abs, 'meta'),
    tmp: path.join(abs, 'ft-tmp'),
  };
}

/** `blobs/<first 2 hex>/<sha256 hex>`. */
export function blobPath(layout: StoreLayout, digest: string): string {
  return path.join(layout.blobs, digest.slice(0, 2), digest);
}

/** `links/<name>` for a name split into components. */
export function linkPath(layout: StoreLayout, components: readonly string[]): string {
  return path.join(layout.links, ...components);
}

/**
 * The relative target a link at `links/<components>` gets, as the Python server makes it:
 * one `../` per directory between the link and the store root.
 */
export function linkTarget(components: readonly string[], digest: string): string {
  return '../'.repeat(components.length) + `blobs/${digest.slice(0, 2)}/${digest}`;
}

const DIGEST = /^[0-9a-f]{64}$/;

/** Whether `s` is a digest as blobs are named: SHA-256 in 64 lowercase hex digits. */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/**
 * The digest of the file `<prefix>/<name>` under `blobs/` when it is where {@link blobPath}
 * puts that digest's blob; undefined for anything else there.
 */
export function digestOfBlobEntry(prefix: string, name: string): string | undefined {
  return isDigest(name) && prefix === name.slice(0, 2) ? name : undefined;
}

/** The digest a link points at: the basename of its target, relative or absolute. */
export function digestOfTarget(target: string): string | undefined {
  const base = target.slice(target.lastIndexOf('/') + 1);
  return isDigest(base) ? base : undefined;
}

/**
 * {@link tmpFile}'s names: random per process, then a counter. Unique without asking the
 * kernel for random bytes per name (a PUT makes two: that was 3% of ft-server's CPU).
 */
const TMP_PREFIX = `${randomBytes(8).toString('hex')}-`;
let tmpCounter = 0;

/**
 * A fresh name in `ft-tmp/` for a file being made: `upload-` (a body on its way to
 * `blobs/`), `link-` (a symlink on its way to `links/`), `health-` (a /healthz probe) or
 * `identity-` (the store's identity at its first open, see store-id.ts). ft-recover empties the directory whatever the kind.
 */
export function tmpFile(tmpDir: string, kind: 'upload' | 'link' | 'health' | 'identity'): string {
  return path.join(tmpDir, `${kind}-${TMP_PREFIX}${(tmpCounter++).toString(36)}`);
}
