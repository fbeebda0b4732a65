import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page, type Request } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`); playwright-core downloads no browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless, and nothing of its own on the network (no updates, sync, QUIC or first-run
 * fetches): the only requests are the ones the page under test makes.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or undefined when they can. */
export async function browserMissing(): Promise<string | undefined> {
  try {
    await access(CHROMIUM, constants.X_OK);
    return undefined;
  } catch {
    return `${CHROMIUM} is missing: apt-get install chromium (see .ci/run)`;
  }
}

export interface TestBrowser {
  page: Page;
  /** Every request the page made so far, in order. */
  requests: Request[];
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Chromium with a fresh profile in a temp dir, one page, its requests recorded. */
export async function openBrowser(): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(tmpdir(), 'ft-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const requests: Request[] = [];
  context.on('request', (r) => requests.push(r));
  let closing: Promise<void> | undefined;
  return {
    page,
    requests,
    close() {
      closing ??= (async () => {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
