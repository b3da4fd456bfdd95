#!/usr/bin/env node
import { main } from '../cli.js';

// `npm run keys -- <command>`: the keys commands of the one `latchkey` CLI (src/cli.ts).
main(['keys', ...process.argv.slice(2)], 'latchkey keys');
