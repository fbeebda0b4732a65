/** The default grace period: a blob at refcount 0 is removed only this long after. */
export const DEFAULT_GRACE_SECONDS = 3600;

/**
 * The shortest grace period ft-recover takes: longer than any transaction of ft-server
 * (a commit's copy in the object store is cut off at 30 s, a transaction idle for 60 s),
 * so a blob a commit in flight is about to name is never removed.
 */
export const MIN_GRACE_SECONDS = 120;
