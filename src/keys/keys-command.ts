import { basename } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig, type Config } from '../config.js';
import { auditKeyChange } from './key-audit.js';
import { KeyStore } from './keystore.js';
import { generateFirstKey, prune, revoke, rotate } from './rotation.js';

export const keysUsage = `usage: latchkey keys <command> [options]      (or: npm run keys -- <command> [options])

commands:
  list                  every key: kid, state, whether it is published and whether it signs, its schedule
  generate              the first key of a deployment: published and signing at once
  rotate                stage a new key: published now, signing after the activation delay; the current
                        key then stops signing and stays published until its tokens have expired
  rotate --now          emergency: the new key signs at once
  revoke <kid>          emergency: remove a key from the JWKS at once; tokens it signed stop verifying
  prune                 delete the files of keys that have left the JWKS

options:
  --dir PATH            key folder (default: LATCHKEY_KEYS_DIR or ./keys)
  --bits N              RSA modulus size for new keys: 2048 (default), 3072 or 4096
  --delay SECONDS       activation delay for rotate (default: LATCHKEY_KEY_ACTIVATION_DELAY, or the JWKS
                        max-age and jose's 10-minute cache, whichever is longer, plus a minute)
  --yes                 confirm an emergency command without a prompt (required when not on a terminal)
`;

/** A command line that cannot be run as given: exit code 2, with the usage. */
export class UsageError extends Error {}

/** Emergency commands say what they break and need a yes: typed at a terminal, or --yes in scripts. */
async function confirm(warning: string, yes: boolean): Promise<void> {
  process.stderr.write(`${warning}\n`);
  if (yes) return;
  if (!process.stdin.isTTY) throw new UsageError('refusing without --yes (not on a terminal)');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question('type "yes" to go on: ');
  rl.close();
  if (answer.trim() !== 'yes') throw new UsageError('cancelled');
}

/** `latchkey keys …`: signing keys in the key folder (no store needed). Returns the exit code. */
export async function runKeys(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      bits: { type: 'string' },
      delay: { type: 'string' },
      now: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const args = positionals[0] === 'keys' ? positionals.slice(1) : positionals;
  const command = args[0];
  if (values.help || !command) {
    process.stdout.write(keysUsage);
    return values.help ? 0 : 2;
  }
  const config: Config = loadConfig(process.env);
  const dir = values.dir ?? config.keysDir;
  const bits = Number(values.bits ?? 2048);
  if (![2048, 3072, 4096].includes(bits)) throw new UsageError('--bits must be 2048, 3072 or 4096');
  const delay = values.delay === undefined ? config.keyActivationDelay : Number(values.delay);
  if (!Number.isInteger(delay) || delay < 0) throw new UsageError('--delay must be a whole number of seconds');

  const keys = new KeyStore(dir, pino({ level: 'warn' }, process.stderr));
  await keys.load();
  const now = Date.now();
  const signer = keys.signer(now)?.kid;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const audited = (change: Parameters<typeof auditKeyChange>[1]) => auditKeyChange(config, change, (line) => process.stderr.write(`${line}\n`));

  switch (command) {
    case 'list':
      out(keys.describe(now));
      return 0;
    case 'generate': {
      const path = await generateFirstKey(dir, keys.all(), now, bits);
      out(`created ${path} (RSA ${bits}, mode 0600): published and signing now`);
      await audited({ type: 'signing_key_generated', kid: basename(path, '.json') });
      return 0;
    }
    case 'rotate': {
      if (values.now) {
        await confirm(
          `rotate --now: the new key signs immediately. Resource servers whose cached JWKS lacks it, and that do not\n` +
            `refetch on an unknown kid, reject new tokens until their cache expires (up to ${config.jwksMaxAge}s here).`,
          values.yes,
        );
      }
      const r = await rotate(dir, keys.all(), now, {
        bits,
        immediate: values.now,
        activationDelayMs: delay * 1000,
        retentionMs: config.keyRetention * 1000,
      });
      out(`created ${r.path} (RSA ${bits}, mode 0600)`);
      out(`  ${r.created.kid}: published now, signs from ${r.created.activatesAt}`);
      for (const old of r.retired) out(`  ${old.kid}: stops signing at ${old.retiresAt}, leaves the JWKS at ${old.expiresAt}`);
      await audited({
        type: 'signing_key_rotated',
        kid: r.created.kid,
        activatesAt: String(r.created.activatesAt),
        immediate: values.now,
        retired: r.retired.map((k) => k.kid),
      });
      return 0;
    }
    case 'revoke': {
      const kid = args[1];
      if (!kid) throw new UsageError('revoke needs a kid (see "keys list")');
      await confirm(
        `revoke ${kid}: it leaves the JWKS now. Every access token it signed (those issued in the last ` +
          `${config.accessTokenTtl}s) stops verifying; clients must refresh.`,
        values.yes,
      );
      await revoke(dir, keys.all(), now, kid, signer);
      out(`revoked ${kid}`);
      await audited({ type: 'signing_key_revoked', kid });
      return 0;
    }
    case 'prune': {
      const gone = await prune(keys.all(), now);
      out(gone.length ? gone.map((k) => `deleted ${k}`).join('\n') : 'nothing to prune');
      if (gone.length > 0) await audited({ type: 'signing_keys_pruned', kids: gone });
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}
