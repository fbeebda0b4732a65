import path from 'node:path';
import { Option, type Command } from 'commander';
import {
  CliError,
  EXIT_STATUS,
  parseCommandLine,
  runCommand,
  toolProgram,
  wholeNumber,
} from '@filetracker/runtime';
import { recoverStore, type RecoverOptions } from './recover/recover.js';
import { DEFAULT_GRACE_SECONDS, MIN_GRACE_SECONDS } from './recover/grace.js';
import { checkScaleOutFlags, scaleOutOptions, type ScaleOutFlags } from './scale-out-flags.js';
import { redactUrl } from './store/bucket-url.js';
import { StoreOpenError } from './store/store-api.js';
import { describeFailure } from './store/fs-failure.js';
import { isConsistent, summarizeReport, type RecoverReport } from './recover/report.js';

/** The option table: parsing and --help come from this one list (STYLE.md). */
function program(): Command {
  const scaleOut = scaleOutOptions(
    'a scale-out store (ft-server --db): its PostgreSQL database, postgres://USER[:PASSWORD]@HOST:PORT/DB (the PG* variables work too); the blobs are in --blobs, or in DIR/blobs/',
    'refused',
  );
  return toolProgram('ft-recover', {
    packageJson: new URL('../package.json', import.meta.url),
    exitStatusNote: 'With --check: 0 consistent, 1 inconsistent.',
  })
    .description(
      'Brings a filetracker 2.x store back to a consistent state (after a crash, a full disk ' +
        'or hand edits) and adopts a store made by the Python server; a drop-in for the ' +
        'Python filetracker-recover. Stop the server first: a store in use is refused. With ' +
        '--db, a scale-out store instead, checked and repaired while its servers run.',
    )
    .argument(
      '[DIR]',
      'the store directory (what ft-server got as -d); with --db and no --blobs, the directory whose blobs/ the processes share',
    )
    .addOption(new Option('-s, --silent', 'print only errors: no progress lines, no summary'))
    .addOption(
      new Option(
        '-f, --full',
        'also decompress every linked blob: recompute its logical size and re-hash it against ' +
          'its name. A corrupt blob is reported on stderr and left in place with its links ' +
          '(restore it or re-upload those names), and the exit status is 1',
      ),
    )
    .addOption(
      new Option(
        '--check',
        'change nothing: report what would be fixed and exit 1 if anything is inconsistent ' +
          '(dangling links, non-links in links/, wrong or missing or extra records, orphan ' +
          'blobs, ft-tmp/ leftovers, no meta/), 0 if the store is consistent',
      ),
    )
    .addOption(
      new Option(
        '--purge-tombstones',
        'also remove every tombstone (deletes remembered during an online migration); run it ' +
          'once the migration is over',
      ).conflicts('check'),
    )
    .addOption(scaleOut.db)
    .addOption(scaleOut.blobs)
    .addOption(scaleOut.s3Endpoint)
    .addOption(
      new Option(
        '--grace <SECONDS>',
        `with --db: a blob no name uses is removed only this long after its last name went, as the sweeper does (at least ${MIN_GRACE_SECONDS}: longer than any ft-server transaction)`,
      )
        .default(DEFAULT_GRACE_SECONDS)
        .argParser(wholeNumber(MIN_GRACE_SECONDS)),
    )
    .addHelpText(
      'after',
      `
Without --check it removes links that do not point at a stored blob and anything in links/
that is not a link, rewrites link targets to the relative form (keeping each link's mtime,
the version), recounts references, adds missing records (logical sizes from the gzip
trailer, or by decompressing), drops records of missing blobs, removes blobs no link uses
and empties ft-tmp/. A symlink naming no blob (one to a directory elsewhere, say) and a
symlink in blobs/ are named on stderr: ft-server never follows them, and a repair removes
the link only, never what it points at; to keep that, move it into the link's place first. A store without meta/ (made by the Python 2.x server) is adopted: meta/
is built, double-encoded non-ASCII names are renamed to their real UTF-8 names, db/ and
locks/ are left alone; nothing is re-uploaded.

With --db (a scale-out store: names in PostgreSQL, blobs in a bucket or a shared DIR/blobs/)
it makes the database and the blobs agree, and it may run while ft-server processes serve
the store (there is no lock to take): each change is made the way ft-server makes it, in
one transaction under the row lock ft-server uses, and a blob a listing lacks is asked for
again before anything is changed. A name whose blob is missing is removed (named on stderr:
upload it again), refcounts are set to the number of names, a record whose blob is missing
is dropped once no name uses it, a blob without a record gets one at refcount 0 (removed a
grace period later), and blobs at refcount 0 past the grace period are removed with their
records. --full streams every blob through gunzip and sha256 and compares it with its key
(a corrupt blob is named on stderr and left with its names; exit 1), and fixes recorded
sizes. It refuses a database without a filetracker schema, a bucket that does not exist,
and a bucket that holds none of the database's blobs (a wrong --blobs or --s3-endpoint).

Progress goes to stderr every 2 s, a one-line summary to stdout.`,
    );
}

interface Flags extends ScaleOutFlags {
  silent?: boolean;
  grace: number;
  full?: boolean;
  check?: boolean;
  purgeTombstones?: boolean;
}

/** Parses flags and runs the recovery; sets the exit code (runCommand). */
export function main(argv: string[]): Promise<void> {
  return runCommand('ft-recover', () => recover(argv));
}

async function recover(argv: string[]): Promise<number> {
  const cmd = parseCommandLine(program(), argv);
  const flags = cmd.opts<Flags>();
  const dir = cmd.args[0];
  checkScaleOutFlags(cmd, flags, { given: dir !== undefined, spelled: 'DIR' });
  if (dir === undefined && flags.db === undefined) {
    cmd.error(`error: missing required argument 'DIR'`, {
      exitCode: 2,
      code: 'commander.missingArgument',
    });
  }
  if (dir !== undefined && flags.blobs !== undefined) {
    cmd.error('error: give --blobs or DIR, not both: with --blobs the blobs are in the bucket', {
      exitCode: 2,
      code: 'ft-recover.scale-out',
    });
  }
  const where = flags.db === undefined ? dir! : redactUrl(flags.db);

  // A second signal kills at once; the first stops between two items (a rerun finishes).
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let report: RecoverReport;
  try {
    const options: RecoverOptions = {
      check: flags.check,
      full: flags.full,
      purgeTombstones: flags.purgeTombstones,
      signal: abort.signal,
      onProgress: flags.silent
        ? undefined
        : (p) =>
            console.error(
              `ft-recover: ${p.phase}: ${p.done} ${p.unit} (${p.ratePerSecond}/s, ${Math.round(p.elapsedMs / 1000)} s)`,
            ),
      onNotice: (n) => {
        if (n.level === 'error' || !flags.silent) console.error(`ft-recover: ${n.message}`);
      },
    };
    report =
      flags.db === undefined
        ? await recoverStore(dir!, options)
        : // Loaded only here: the AWS SDK and pg take seconds to load on a busy host.
          await (
            await import('./recover/scale-out.js')
          ).recoverScaleOut(
            { db: flags.db, bucket: flags.blobs, s3Endpoint: flags.s3Endpoint, dir },
            { ...options, graceSeconds: flags.grace },
          );
  } catch (err) {
    if (err instanceof StoreOpenError) throw new CliError(err.code, err.message, { cause: err });
    if (abort.signal.aborted) {
      throw new CliError('INTERRUPTED', `interrupted; run ft-recover ${where} again to finish`, {
        cause: err,
      });
    }
    // The store's files refusing us half-way (a subtree of another owner): say what to do.
    const { code, reason } = describeFailure(err, path.resolve(dir ?? '.'));
    throw new CliError(
      code === 'PERMISSION' ? 'PERMISSION' : 'RECOVER_FAILED',
      code === 'PERMISSION'
        ? `recovering ${where} failed: ${reason}; then run ft-recover again`
        : `recovering ${where} failed: ${(err as Error).message.split('\n')[0]}; fix the cause and run ft-recover again`,
      { cause: err },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const ok = flags.check === true ? isConsistent(report) : report.corruptBlobs === 0;
  const summary = summarizeReport(report);
  if (!flags.silent) console.log(summary);
  else if (!ok) console.error(summary);
  return ok ? EXIT_STATUS.ok : EXIT_STATUS.failed;
}
