import { Box, Static, Text } from 'ink';
import {
  formatBytes,
  formatDuration,
  formatEta,
  formatOutOf,
  formatRates,
  plural,
} from '../format.js';
import type { Notice, ProgressState } from '../progress.js';
import { printable } from '../summary.js';

const BAR_WIDTH = 28;
const SLIDER_WIDTH = 6;
/** 'Interrupted' and a space. */
const LABEL_WIDTH = 12;

/** A bar filled to `fraction` (0..1): full only when all is done. */
function bar(fraction: number): string {
  const filled = Math.floor(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled);
}

/** A bar with a block sliding back and forth: work of unknown size going on. */
function slider(elapsedMs: number): string {
  const span = BAR_WIDTH - SLIDER_WIDTH;
  const step = Math.floor(elapsedMs / 100) % (2 * span);
  const at = step <= span ? step : 2 * span - step;
  return '░'.repeat(at) + '█'.repeat(SLIDER_WIDTH) + '░'.repeat(span - at);
}

const NOTICE_STYLE = {
  failed: { mark: '✗ failed', color: 'red' },
  skipped: { mark: '! skipped', color: 'yellow' },
  difference: { mark: '≠ differs', color: 'red' },
} as const;

function NoticeLine({ notice }: { notice: Notice }) {
  const style = NOTICE_STYLE[notice.kind];
  const what = notice.kind === 'difference' ? notice.name : notice.path;
  return (
    <Text>
      <Text color={style.color}>{style.mark}</Text> {printable(what)}: {notice.text}
    </Text>
  );
}

const VERB = { upload: 'Uploading', 'dry-run': 'Listing', verify: 'Verifying' } as const;

/** Props of {@link ProgressView}. */
export interface ProgressViewProps {
  /** A snapshot from `ProgressTracker.snapshot()`. */
  state: ProgressState;
}

/**
 * The live progress of a migration on a terminal: the concurrent count and the uploads as
 * bars with files and bytes done/total, throughput, ETA, files in flight, retries and
 * failures, and the last errors. Failures, reported skips and differences are printed
 * once, above, through `<Static>`.
 */
export function ProgressView({ state }: ProgressViewProps) {
  const { scan } = state;
  const counted = scan.done;
  const total = Math.max(scan.files, state.processed.files);
  // The smaller of the files and the bytes done: full only when both are.
  const fraction = counted
    ? Math.min(
        total > 0 ? state.processed.files / total : 1,
        scan.bytes > 0 ? state.processed.bytes / scan.bytes : 1,
      )
    : 0;
  const uploadBar =
    counted || state.finished
      ? bar(state.finished && !state.interrupted ? 1 : fraction)
      : slider(state.elapsedMs);
  const status = state.finished ? (state.interrupted ? 'Interrupted' : 'Done') : VERB[state.mode];
  return (
    <>
      <Static items={state.notices}>
        {(notice, index) => <NoticeLine key={index} notice={notice} />}
      </Static>
      <Box flexDirection="column">
        <Text>
          <Text bold>{'Counting'.padEnd(LABEL_WIDTH)}</Text>
          {counted ? bar(1) : slider(state.elapsedMs)} {plural(scan.files, 'file')},{' '}
          {formatBytes(scan.bytes)}
          {scan.error ? (
            <Text color="red"> (count stopped: {scan.error})</Text>
          ) : counted ? (
            <Text color="green"> ✓</Text>
          ) : (
            ' …'
          )}
        </Text>
        <Text>
          <Text bold>{status.padEnd(LABEL_WIDTH)}</Text>
          {uploadBar} {formatOutOf(state.processed.files, total, counted)} files,{' '}
          {formatBytes(state.processed.bytes)}
          {counted ? `/${formatBytes(scan.bytes)}` : ''}
        </Text>
        <Text>
          {''.padEnd(LABEL_WIDTH)}
          {formatRates(state)}
          {state.finished ? '' : `, ETA ${formatEta(state.eta)}`}, elapsed{' '}
          {formatDuration(state.elapsedMs)}
        </Text>
        <Text>
          {''.padEnd(LABEL_WIDTH)}
          {state.inFlight} in flight, {state.done.files}{' '}
          {state.mode === 'upload'
            ? 'uploaded'
            : state.mode === 'verify'
              ? 'identical'
              : 'to upload'}
          , {state.skipped} skipped, {plural(state.retries, 'retry', 'retries')},{' '}
          <Text color={state.failed > 0 ? 'red' : undefined}>{state.failed} failed</Text>
          {state.interruptedFiles > 0 ? (
            <Text color="yellow">, {state.interruptedFiles} interrupted</Text>
          ) : null}
          {state.mode === 'verify' ? (
            <Text color={state.differences > 0 ? 'red' : undefined}>
              , {state.differences} differ
            </Text>
          ) : null}
        </Text>
        {state.noticesOmitted > 0 ? (
          <Text dimColor>
            {''.padEnd(LABEL_WIDTH)}
            {plural(state.noticesOmitted, 'more line')} not shown (--report FILE lists them)
          </Text>
        ) : null}
        {state.lastErrors.length > 0 ? (
          <Box flexDirection="column">
            <Text dimColor>Last errors:</Text>
            {state.lastErrors.map((notice, index) => (
              <Text key={index} dimColor wrap="truncate-end">
                {'  '}
                {printable(notice.kind === 'difference' ? notice.name : notice.path)}: {notice.text}
              </Text>
            ))}
          </Box>
        ) : null}
      </Box>
    </>
  );
}
