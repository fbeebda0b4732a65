import { HEADER, formatHttpDate } from '@filetracker/shared-protocol';
import type { FileEntry } from '../store/store-api.js';

/** The strong validator of a file's content: its digest. */
export function etagOf(entry: FileEntry): string {
  return `"${entry.digest}"`;
}

/** Whether an `If-None-Match` value names this entity tag (or `*`). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((t) => {
    const tag = t.trim();
    return tag === etag || tag === 'W/' + etag || tag === '*';
  });
}

/** Headers of every GET/HEAD answer for a file (PROTOCOL.md), whatever its encoding. */
export function fileHeaders(entry: FileEntry): Record<string, string> {
  return {
    [HEADER.lastModified]: formatHttpDate(entry.version),
    [HEADER.logicalSize]: String(entry.logicalSize),
    [HEADER.etag]: etagOf(entry),
    [HEADER.vary]: HEADER.acceptEncoding,
  };
}
