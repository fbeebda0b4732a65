#!/usr/bin/env -S node --max-semi-space-size=4
// The flag keeps V8's young generation at 8 MiB instead of 32: ft-migrate makes short-lived
// objects by the million and keeps few, so its peak RSS drops by about 24 MiB (50,000 files:
// 114-115 MiB against 138-139) at about the same files/s. npm's and pnpm's bin shims copy
// it from this line; `node bin/ft-migrate.mjs` runs without it.
//
// The bundle that `pnpm run build` makes (scripts/bundle-migrate.mjs) starts about 45 ms
// sooner than dist/main.js's 70 modules; a build by tsc alone has none, and runs those.
let main;
try {
  ({ main } = await import('../dist/ft-migrate.bundle.mjs'));
} catch (err) {
  if (
    err?.code !== 'ERR_MODULE_NOT_FOUND' ||
    !String(err.message).includes('ft-migrate.bundle.mjs')
  )
    throw err;
  ({ main } = await import('../dist/main.js'));
}

await main(process.argv);
