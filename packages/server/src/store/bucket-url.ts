/*
 * `--blobs s3://BUCKET[/PREFIX]` and `--db URL` as text, apart from the clients that use
 * them: ft-recover parses its command line without loading the AWS SDK or pg.
 */

/** Where `--blobs s3://BUCKET[/PREFIX]` puts the blobs. */
export interface BucketLocation {
  bucket: string;
  /** Keys start with this; empty for the bucket's root. */
  prefix: string;
}

/** S3's bucket names (3 to 63 of lowercase letters, digits, dots and hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Parses `s3://BUCKET[/PREFIX]`; throws a one-line Error saying what is wrong (the caller,
 * commander, makes it a usage error).
 */
export function parseBucketUrl(value: string): BucketLocation {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(value.trim());
  if (!m) throw new Error('expected s3://BUCKET or s3://BUCKET/PREFIX.');
  const bucket = m[1]!;
  if (!BUCKET.test(bucket)) {
    throw new Error(
      'expected a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens.',
    );
  }
  return { bucket, prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable URL)';
  }
}
