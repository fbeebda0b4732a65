#!/usr/bin/env node
// Puts the tools of this clone on PATH: for each command in the packages' "bin" fields
// (ft-server, ft-recover, ft-migrate, ft-legacy-static and the Python names), a small
// shell script in PREFIX/bin that runs the clone's bin file with this Node. Nothing is
// fetched: `npm install -g` of a package here would ask the registry for its
// @filetracker/* dependencies, and `npx NAME` outside the clone asks the registry for a
// package called NAME, whoever published it.
//
//   node scripts/install-tools.mjs [--prefix DIR] [--uninstall] [--dry-run]
//
// PREFIX defaults to $PREFIX, then /usr/local. A file this script did not write (no marker
// line) is never overwritten or removed. Exit status as the tools: 0 done, 1 failed,
// 2 a bad command line.
import { constants } from 'node:fs';
import { access, lstat, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TOOL = 'install-tools';
const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The second line of every file we write: how uninstall (and a reinstall) knows it. */
const MARKER = '# filetracker-tools:';
const USAGE = `usage: node scripts/install-tools.mjs [--prefix DIR] [--uninstall] [--dry-run]

Installs (or with --uninstall removes) ft-server, ft-recover, ft-migrate,
ft-legacy-static, filetracker-server, filetracker-recover and filetracker-migrate
in PREFIX/bin as commands that run this clone (${REPOSITORY})
with ${process.execPath}. Run \`pnpm install\` first (it builds the tools).

  --prefix DIR   install into DIR/bin (default: $PREFIX, then /usr/local)
  --uninstall    remove the commands this script installed, nothing else
  --dry-run      say what would be done, change nothing
  -h, --help     print this help and exit

Exit status: 0 done, 1 the work failed (stderr says why), 2 a bad command line.`;

class Failure extends Error {}

/** `'it'\''s'`: a word the shell reads back as exactly `text`. */
function shellQuote(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Every command the packages declare, with its bin file and the node flags of its `#!`
 * line (ft-migrate's `--max-semi-space-size=4`), so the installed command runs as
 * `npx NAME` in the clone does.
 */
async function commands() {
  const found = [];
  const packages = path.join(REPOSITORY, 'packages');
  for (const dir of (await readdir(packages)).sort()) {
    let manifest;
    try {
      manifest = JSON.parse(await readFile(path.join(packages, dir, 'package.json'), 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') continue;
      throw err;
    }
    for (const [name, bin] of Object.entries(manifest.bin ?? {})) {
      const file = path.join(packages, dir, bin);
      const source = await readFile(file, 'utf8');
      const shebang = /^#!.*\bnode((?:[ \t]+-\S+)*)[ \t]*$/m.exec(source.split('\n')[0]);
      const nodeFlags = shebang?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
      // The first dist/ module it loads: `from '../dist/main.js'`, or ft-migrate's bundle,
      // `import('../dist/ft-migrate.bundle.mjs')`.
      const entry = /(?:from |import\()'(\.\.\/dist\/[^']+)'/.exec(source)?.[1];
      found.push({
        name,
        file,
        nodeFlags,
        entry: entry && path.resolve(path.dirname(file), entry),
      });
    }
  }
  return found;
}

/** The script in PREFIX/bin for one command. */
function wrapper(command) {
  const run = [process.execPath, ...command.nodeFlags, command.file].map(shellQuote).join(' ');
  return `#!/bin/sh
${MARKER} ${command.name} of ${REPOSITORY}, written by scripts/install-tools.mjs;
# removed by \`node scripts/install-tools.mjs --uninstall\` (with the same --prefix).
if [ ! -f ${shellQuote(command.file)} ]; then
  echo ${shellQuote(`${command.name}: ${command.file} is gone; reinstall the tools from a clone (README, Quick start)`)} >&2
  exit 1
fi
exec ${run} "$@"
`;
}

/** 'missing', 'ours' (a file with our marker) or 'foreign' (anything else). */
async function ownerOf(file) {
  let stats;
  try {
    stats = await lstat(file);
  } catch (err) {
    if (err.code === 'ENOENT') return 'missing';
    throw err;
  }
  if (!stats.isFile()) return 'foreign';
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead).toString('utf8').split('\n')[1]?.startsWith(MARKER)
      ? 'ours'
      : 'foreign';
  } finally {
    await handle.close();
  }
}

/** Writes `text` to `file` (mode 755) through a temp file and a rename: never half a script. */
async function writeExecutable(file, text) {
  const temp = `${file}.install-tools-${process.pid}`;
  try {
    const handle = await open(temp, 'wx', 0o755);
    try {
      await handle.writeFile(text);
      await handle.chmod(0o755);
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

function onPath(binDir) {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => path.resolve(d) === binDir);
}

async function install(binDir, dryRun) {
  const all = await commands();
  const unbuilt = all.filter((c) => c.entry === undefined);
  if (unbuilt.length > 0) throw new Failure(`${unbuilt[0].file} names no ../dist/ entry`);
  for (const command of all) {
    try {
      await access(command.entry, constants.R_OK);
    } catch {
      throw new Failure(
        `${path.relative(REPOSITORY, command.entry)} is missing: run \`pnpm install\` in ${REPOSITORY} first (it builds the tools)`,
      );
    }
  }
  // Every target is checked before anything is written: a refusal leaves PREFIX/bin as it was.
  const foreign = [];
  for (const command of all) {
    if ((await ownerOf(path.join(binDir, command.name))) === 'foreign') foreign.push(command.name);
  }
  if (foreign.length > 0) {
    throw new Failure(
      `${foreign.map((n) => path.join(binDir, n)).join(', ')} ${foreign.length === 1 ? 'exists and was' : 'exist and were'} not installed by install-tools; nothing was installed. Remove or rename ${foreign.length === 1 ? 'it' : 'them'} (another filetracker?), or pick another --prefix`,
    );
  }
  if (dryRun) {
    for (const c of all) console.log(`would install ${path.join(binDir, c.name)} -> ${c.file}`);
    return;
  }
  try {
    await mkdir(binDir, { recursive: true });
    for (const command of all)
      await writeExecutable(path.join(binDir, command.name), wrapper(command));
  } catch (err) {
    throw new Failure(
      err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS'
        ? `cannot write to ${binDir} (${err.code}): run it as root, or pass --prefix DIR (e.g. --prefix ~/.local) with DIR/bin on PATH`
        : `cannot write to ${binDir}: ${err.message}`,
    );
  }
  for (const c of all) console.log(`installed ${path.join(binDir, c.name)} -> ${c.file}`);
  if (!onPath(binDir))
    console.log(`note: ${binDir} is not on PATH; add it to run the commands by name`);
}

async function uninstall(binDir, dryRun) {
  for (const command of await commands()) {
    const file = path.join(binDir, command.name);
    const owner = await ownerOf(file);
    if (owner === 'foreign') {
      console.log(`left ${file} alone: not installed by install-tools`);
    } else if (owner === 'ours') {
      if (dryRun) {
        console.log(`would remove ${file}`);
        continue;
      }
      try {
        await rm(file);
      } catch (err) {
        throw new Failure(`cannot remove ${file} (${err.code}): run it as root`);
      }
      console.log(`removed ${file}`);
    }
  }
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        prefix: { type: 'string' },
        uninstall: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`${TOOL}: ${err.message}\n(run node scripts/install-tools.mjs --help for usage)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const prefix = values.prefix ?? process.env.PREFIX ?? '/usr/local';
  if (prefix === '') {
    console.error(`${TOOL}: --prefix must not be empty`);
    return 2;
  }
  const binDir = path.resolve(prefix, 'bin');
  try {
    await (values.uninstall ? uninstall : install)(binDir, values['dry-run'] === true);
    return 0;
  } catch (err) {
    if (!(err instanceof Failure)) throw err;
    console.error(`${TOOL}: ${err.message}`);
    return 1;
  }
}

process.exitCode = await main();
