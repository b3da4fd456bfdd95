#!/usr/bin/env node
import { main } from './cli.js';

// The `latchkey` command (package.json "bin"; `npm run latchkey -- …` from a checkout).
main(process.argv.slice(2));
