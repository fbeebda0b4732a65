import { InvalidArgumentError, Option, type Command } from 'commander';
import { httpUrl } from '@filetracker/runtime';
import { parseBucketUrl, type BucketLocation } from './store/bucket-url.js';

/*
 * The scale-out flags (issue 14), shared by ft-server and ft-recover so that both read
 * `--db`, `--blobs` and `--s3-endpoint` (and FT_DB, FT_BLOBS, FT_S3_ENDPOINT) alike.
 */

/** What the scale-out flags parse to. */
export interface ScaleOutFlags {
  db?: string;
  blobs?: BucketLocation;
  s3Endpoint?: string;
}

/** `--blobs`'s value; a usage error (exit 2) when it is not `s3://BUCKET[/PREFIX]`. */
function bucketUrl(value: string): BucketLocation {
  try {
    return parseBucketUrl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * The three options; each tool says what the database is to it, and whether a missing
 * bucket is created (ft-server) or refused (ft-recover).
 */
export function scaleOutOptions(
  dbDescription: string,
  bucket: 'created' | 'refused' = 'created',
): {
  db: Option;
  blobs: Option;
  s3Endpoint: Option;
} {
  return {
    db: new Option('--db <URL>', dbDescription).env('FT_DB'),
    blobs: new Option(
      '--blobs <s3://BUCKET[/PREFIX]>',
      `scale-out, needs --db: keep blobs in an S3-compatible bucket (${bucket === 'created' ? 'created if missing' : 'a missing one is refused'}), under PREFIX; credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (or the AWS profile)`,
    )
      .env('FT_BLOBS')
      .argParser(bucketUrl),
    s3Endpoint: new Option(
      '--s3-endpoint <URL>',
      'with --blobs: the endpoint of a non-AWS object store (Swift, Ceph RGW, MinIO, Garage), addressed path-style',
    )
      .env('FT_S3_ENDPOINT')
      .argParser(httpUrl),
  };
}

/**
 * The flags that only make sense together: a usage error (exit 2, one line) otherwise.
 * FT_DB= (empty, as in an env file with the line left blank) means no database: `db` is
 * deleted from `flags`. `dir`: how the tool spells its store directory (`-d DIR`, `DIR`)
 * and whether it was given.
 */
export function checkScaleOutFlags(
  command: Command,
  flags: ScaleOutFlags,
  dir: { given: boolean; spelled: string },
): void {
  if (flags.db === '') delete flags.db;
  const usage = (message: string): never =>
    command.error(`error: ${message}`, { exitCode: 2, code: `${command.name()}.scale-out` });
  if (flags.blobs !== undefined && flags.db === undefined) {
    usage(
      '--blobs (FT_BLOBS) needs --db URL (FT_DB): the bucket holds only blobs, names and versions live in PostgreSQL',
    );
  }
  if (flags.s3Endpoint !== undefined && flags.blobs === undefined) {
    usage('--s3-endpoint (FT_S3_ENDPOINT) needs --blobs s3://BUCKET and --db URL');
  }
  if (flags.db !== undefined && flags.blobs === undefined && !dir.given) {
    usage(
      `--db (FT_DB) needs a place for the blobs: --blobs s3://BUCKET[/PREFIX], or ${dir.spelled} for ${dir.spelled.replace(/^-d /, '')}/blobs/ shared by the processes`,
    );
  }
}
