#!/usr/bin/env -S node --max-semi-space-size=4
// The flag keeps V8's young generation at 8 MiB instead of 32: ft-migrate makes short-lived
// objects by the million and keeps few, so its peak RSS drops by about 24 MiB (50,000 files:
// 114-115 MiB against 138-139) at about the same files/s. npm's and pnpm's bin shims copy
// it from this line; `node bin/ft-migrate.mjs` runs without it.
import { main } from '../dist/main.js';

await main(process.argv);
