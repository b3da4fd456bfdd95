import { createInterface } from 'node:readline/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { withCliServices } from './cli-services.js';
import { ConfigError, loadConfig } from './config.js';

const usage = `usage: latchkey incident revoke-all [--role NAME] --yes      (or: npm run incident -- revoke-all --yes)

  revoke-all            log everyone out: every session of every user created before now is revoked —
                        refresh refused, access tokens refused by latchkey and GET /verify at once and by
                        verifiers within about a second. Users simply log in again; there is no undo.
  revoke-all --role R   the same for the users holding role R only (e.g. every admin)

options:
  --yes                 confirm without a prompt (required when not on a terminal)

Reads the same environment as the server (REDIS_URL, REDIS_KEY_PREFIX, ...).
`;

class UsageError extends Error {}

export interface IncidentIo {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Whether a person can be asked (stdin is a terminal). */
  interactive: boolean;
}

const defaultIo = (): IncidentIo => ({
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  interactive: Boolean(process.stdin.isTTY),
});

/**
 * The incident switch from the command line: `latchkey incident revoke-all`. Returns the exit code:
 * 0 done, 1 failed (store unreachable), 2 usage or configuration.
 */
export async function runIncident(argv: string[], io: IncidentIo = defaultIo()): Promise<number> {
  try {
    return await incident(argv, io);
  } catch (err) {
    io.err(`latchkey incident: ${(err as Error).message}`);
    if (err instanceof UsageError) io.err(`\n${usage}`);
    return err instanceof UsageError || err instanceof ConfigError ? 2 : 1;
  }
}

async function incident(argv: string[], io: IncidentIo): Promise<number> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        options: { yes: { type: 'boolean', default: false }, role: { type: 'string' }, help: { type: 'boolean', default: false } },
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();
  if (values.help) {
    io.out(usage);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'revoke-all') throw new UsageError('expected one command: revoke-all');
  const role = values.role ?? null;
  if (role !== null && !/^[A-Za-z0-9_.:-]{1,64}$/.test(role)) throw new UsageError('--role: a role name of letters, digits and _ . : -');

  const config = loadConfig(io.env);
  if (!config.redis) {
    throw new UsageError('no Redis configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): the embedded store lives inside one server process');
  }
  const who = role === null ? 'EVERY session of EVERY user' : `every session of every user with role "${role}"`;
  await confirm(`This revokes ${who} created before now. Everyone affected must log in again.`, values.yes, io);

  // The server's own services, so the switch is audited (actor `cli`) and announced like any revocation.
  const mark = await withCliServices(config, (core, context) => core.revocations.revokeEveryone(role, context));
  io.out(`revoked: ${who} created before ${new Date(mark).toISOString()}`);
  return 0;
}

/** Says what is about to break and needs a yes: typed at a terminal, or --yes in scripts. */
async function confirm(warning: string, yes: boolean, io: IncidentIo): Promise<void> {
  io.err(warning);
  if (yes) return;
  if (!io.interactive) throw new UsageError('refusing without --yes (not on a terminal)');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question('type "yes" to go on: ');
  rl.close();
  if (answer.trim() !== 'yes') throw new UsageError('cancelled');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runIncident(process.argv.slice(2)).then((code) => process.exit(code));
}
