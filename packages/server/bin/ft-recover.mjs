#!/usr/bin/env node
import { main } from '../dist/recover-main.js';

await main(process.argv);
