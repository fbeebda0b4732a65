import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnTracked, stopChild } from './lifecycle.js';
import { freePort, waitForPort, type Running } from './proc.js';

/**
 * The minimal lighttpd: document root = an ft_root whose files/ holds the files,
 * a port, every file `application/octet-stream`, no modules beyond the defaults (so no
 * access log and no compression). Bound to 127.0.0.1 only.
 */
export function lighttpdConfig(ftRoot: string, port: number): string {
  return [
    `server.document-root = "${ftRoot}"`,
    `server.port = ${port}`,
    `server.bind = "127.0.0.1"`,
    `mimetype.assign = ("" => "application/octet-stream")`,
    '',
  ].join('\n');
}

/** Starts `lighttpd -D` over `ftRoot`; its config and error output go to `workDir`. */
export async function startLighttpd(
  bin: string,
  ftRoot: string,
  workDir: string,
): Promise<Running> {
  let lastError: unknown;
  // The port is chosen before lighttpd binds it; another process may take it in between.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = path.join(workDir, `lighttpd-${port}.conf`);
    await writeFile(conf, lighttpdConfig(ftRoot, port));
    const child = spawnTracked(bin, ['-D', '-f', conf], { stdio: 'ignore' });
    try {
      await waitForPort(port, child);
    } catch (err) {
      lastError = err;
      await stopChild(child);
      continue;
    }
    return {
      child,
      pid: child.pid!,
      url: `http://127.0.0.1:${port}`,
      stop: () => stopChild(child),
    };
  }
  throw new Error(`lighttpd did not start: ${String(lastError)}`);
}
