import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../config.js';
import { generateKeyFile, writeKeyFile } from './key-file.js';
import { KeyStore } from './keystore.js';

const usage = `usage: latchkey keys <command> [options]

commands:
  list                    every key with its schedule, whether it is published and whether it signs
  generate [--bits N]     create a key that is published and signs at once (first key of a deployment)

options:
  --dir PATH              key folder (default: LATCHKEY_KEYS_DIR or ./keys)
  --bits N                RSA modulus size: 2048 (default), 3072 or 4096
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { dir: { type: 'string' }, bits: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals[0] === 'keys' ? positionals[1] : positionals[0];
  if (values.help || !command) {
    process.stdout.write(usage);
    return command || values.help ? 0 : 2;
  }
  const dir = values.dir ?? loadConfig(process.env).keysDir;
  const log = pino({ level: 'warn' }, process.stderr);
  const store = new KeyStore(dir, log);
  const now = new Date();

  switch (command) {
    case 'generate': {
      const bits = Number(values.bits ?? 2048);
      if (![2048, 3072, 4096].includes(bits)) throw new UsageError('--bits must be 2048, 3072 or 4096');
      const path = await writeKeyFile(dir, await generateKeyFile(now, { bits }));
      process.stdout.write(`created ${path} (RSA ${bits}, mode 0600): published and signing now\n`);
      return 0;
    }
    case 'list': {
      await store.load();
      process.stdout.write(`${store.describe(now.getTime())}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`latchkey keys: ${(err as Error).message}\n`);
    if (err instanceof UsageError) process.stderr.write(usage);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
