/**
 * What ft-recover found, and (unless `check`) fixed. In check mode every count is of
 * things that would be fixed.
 */
export interface RecoverReport {
  check: boolean;
  full: boolean;
  /**
   * A scale-out store (ft-recover --db): names in PostgreSQL instead of links, blobs in a
   * bucket; `links` counts names, `danglingLinks` names whose blob is missing, `orphanBlobs`
   * records at refcount 0 past the grace period.
   */
  scaleOut: boolean;
  /** `meta/` was missing (a store made by the Python server): it was built (adopted). */
  metaMissing: boolean;
  /** Links that point at a stored blob. */
  links: number;
  /** Blobs with at least one link. */
  blobs: number;
  /** Links whose target is not a stored blob (dangling, foreign, not a digest): removed. */
  danglingLinks: number;
  /** Regular files, fifos, sockets in `links/`: removed. */
  nonLinks: number;
  /** Links to a stored blob by another path than the canonical relative one: rewritten. */
  retargetedLinks: number;
  /** Double-encoded names (adoption only): renamed to their real UTF-8 names. */
  renamedNames: number;
  /** Double-encoded names whose real name was taken: left alone, with a warning. */
  renameConflicts: number;
  /** Records whose refcount was not the number of links. */
  refcountsFixed: number;
  /** Linked blobs without a record. */
  recordsAdded: number;
  /** Records of blobs that are not stored. */
  recordsDropped: number;
  /** Records whose stored size (or, with --full, logical size) was wrong. */
  sizesFixed: number;
  /** Blobs no link uses: removed with their records. */
  orphanBlobs: number;
  /** Scale-out: blobs in the bucket without a record: given one at refcount 0 (swept later). */
  unrecordedBlobs: number;
  /** Files in `blobs/` not named `<2 hex>/<sha256 hex>`: removed. */
  strayFiles: number;
  /** Entries left in `ft-tmp/` by interrupted uploads: removed. */
  tmpLeftovers: number;
  /** Blobs that are not valid gzip or (with --full) do not hash to their name: left alone. */
  corruptBlobs: number;
  /** Tombstones found. */
  tombstones: number;
  /** Tombstones removed (--purge-tombstones). */
  tombstonesPurged: number;
}

export function emptyReport(check: boolean, full: boolean): RecoverReport {
  return {
    check,
    full,
    scaleOut: false,
    metaMissing: false,
    links: 0,
    blobs: 0,
    danglingLinks: 0,
    nonLinks: 0,
    retargetedLinks: 0,
    renamedNames: 0,
    renameConflicts: 0,
    refcountsFixed: 0,
    recordsAdded: 0,
    recordsDropped: 0,
    sizesFixed: 0,
    orphanBlobs: 0,
    unrecordedBlobs: 0,
    strayFiles: 0,
    tmpLeftovers: 0,
    corruptBlobs: 0,
    tombstones: 0,
    tombstonesPurged: 0,
  };
}

/** Whether the store was consistent when looked at (for --check: nothing to fix). */
export function isConsistent(report: RecoverReport): boolean {
  return (
    !report.metaMissing &&
    report.danglingLinks === 0 &&
    report.nonLinks === 0 &&
    report.retargetedLinks === 0 &&
    report.renamedNames === 0 &&
    report.refcountsFixed === 0 &&
    report.recordsAdded === 0 &&
    report.recordsDropped === 0 &&
    report.sizesFixed === 0 &&
    report.orphanBlobs === 0 &&
    report.unrecordedBlobs === 0 &&
    report.strayFiles === 0 &&
    report.tmpLeftovers === 0 &&
    report.corruptBlobs === 0
  );
}

/** [count, what was fixed, what --check found, always shown] */
type SummaryItem = [number, string, string, boolean];

/** The local store's items: links, blobs/ and ft-tmp/. */
function localItems(r: RecoverReport): SummaryItem[] {
  return [
    [r.danglingLinks, 'dangling links removed', 'dangling links', true],
    [r.nonLinks, 'non-links removed from links/', 'non-links in links/', false],
    [
      r.retargetedLinks,
      'links rewritten to the relative form',
      'links not in relative form',
      false,
    ],
    [r.renamedNames, 'double-encoded names renamed', 'double-encoded names to rename', false],
    [r.renameConflicts, 'renames skipped (name taken)', 'renames blocked (name taken)', false],
    [r.orphanBlobs, 'orphan blobs removed', 'orphan blobs', true],
    [r.strayFiles, 'stray files removed from blobs/', 'stray files in blobs/', false],
  ];
}

/** The scale-out store's items: names in the database, blobs in the bucket. */
function scaleOutItems(r: RecoverReport): SummaryItem[] {
  return [
    [r.danglingLinks, 'names without a blob removed', 'names without a blob', true],
    [
      r.orphanBlobs,
      'unreferenced blobs past the grace period removed',
      'unreferenced blobs past the grace period',
      true,
    ],
    [
      r.unrecordedBlobs,
      'blobs without a record given one (swept after the grace period)',
      'blobs without a record',
      false,
    ],
  ];
}

/** The one-line summary ft-recover prints at the end. */
export function summarizeReport(r: RecoverReport): string {
  const items: SummaryItem[] = [
    ...(r.scaleOut ? scaleOutItems(r) : localItems(r)),
    [r.refcountsFixed, 'refcounts fixed', 'wrong refcounts', true],
    [r.recordsAdded, 'records added', 'missing records', false],
    [r.recordsDropped, 'records dropped', 'records without a blob', false],
    [r.sizesFixed, 'sizes fixed', 'wrong sizes', false],
    [r.tmpLeftovers, 'ft-tmp/ leftovers removed', 'ft-tmp/ leftovers', false],
    [r.tombstonesPurged, 'tombstones purged', 'tombstones purged', false],
  ];
  const parts = [`${r.links} ${r.scaleOut ? 'names' : 'links'}`, `${r.blobs} blobs`];
  if (r.metaMissing)
    parts.push(r.check ? 'meta/ missing (adopt with ft-recover DIR)' : 'meta/ built');
  for (const [n, fixed, found, always] of items) {
    if (n > 0 || always) parts.push(`${n} ${r.check ? found : fixed}`);
  }
  if (r.tombstones > 0 && r.tombstonesPurged === 0) parts.push(`${r.tombstones} tombstones`);
  parts.push(`${r.corruptBlobs} corrupt`);
  const head = r.check ? (isConsistent(r) ? 'consistent: ' : 'inconsistent: ') : '';
  return `ft-recover: ${head}${parts.join(', ')}`;
}
