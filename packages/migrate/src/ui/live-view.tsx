import { render } from 'ink';
import type { ProgressTracker } from '../progress.js';
import { ProgressView } from './ProgressView.js';

/** Redraws per second; ink throttles output further. */
const REDRAW_MS = 150;

/**
 * Renders {@link ProgressView} on the terminal from `tracker` until `stop()`, which draws
 * the final state and unmounts. Ctrl-C stays a signal (SIGINT) for main to handle.
 */
export function startLiveView(tracker: ProgressTracker): { stop(): Promise<void> } {
  const instance = render(<ProgressView state={tracker.snapshot()} />, {
    exitOnCtrlC: false,
    patchConsole: false,
  });
  const timer = setInterval(
    () => instance.rerender(<ProgressView state={tracker.snapshot()} />),
    REDRAW_MS,
  );
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        instance.rerender(<ProgressView state={tracker.snapshot()} />);
        instance.unmount();
        await instance.waitUntilExit();
      })();
      return stopping;
    },
  };
}
