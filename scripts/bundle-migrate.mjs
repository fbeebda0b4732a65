/**
 * Bundles ft-migrate into one module, packages/migrate/dist/ft-migrate.bundle.mjs, which its
 * bin loads (run by `pnpm run build`, after tsc). Why: ft-migrate's start on an empty tree
 * was almost all Node's loading of some 70 ES modules one by one (resolving each
 * specifier, reading, translating, linking), about 0.30 s against a floor of 0.10 for
 * `node -e 0` (issue 15 asks for 0.25); one module loads about 45 ms sooner (interleaved
 * runs, same machine).
 *
 * Left out, loaded from their own dist/ when used: the `--into` store (targets/store-target.js,
 * which loads @filetracker/server), the live view (ui/live-view.js: ink and React, only
 * on a TTY), and the 2.x client's root (@filetracker/shared-protocol: got, only with
 * --from). So some classes exist twice at run time; FiletrackerError and CliError answer
 * `instanceof` for either copy (see their Symbol.hasInstance).
 */
import { build } from 'esbuild';

const LAZY = /^\.\/(targets\/store-target|ui\/live-view)\.js$/;

await build({
  entryPoints: ['packages/migrate/dist/main.js'],
  outfile: 'packages/migrate/dist/ft-migrate.bundle.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // The bundle sits in dist/ beside main.js, so `new URL('../package.json',
  // import.meta.url)` and createRequire(import.meta.url) find what they found before.
  external: ['@filetracker/server', '@filetracker/server/*', 'ink', 'react'],
  // commander is CommonJS: its require() calls need a require in an ES module.
  banner: {
    js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);",
  },
  plugins: [
    {
      name: 'left-out',
      setup(b) {
        b.onResolve({ filter: LAZY }, (args) => ({ path: args.path, external: true }));
        b.onResolve({ filter: /^@filetracker\/shared-protocol$/ }, (args) =>
          args.kind === 'dynamic-import' ? { path: args.path, external: true } : undefined,
        );
      },
    },
  ],
  logLevel: 'warning',
});
