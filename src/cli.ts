import { CliError } from './cli-error.js';
import { ConfigError } from './config.js';
import { ApiError } from './errors.js';
import { keysUsage, runKeys, UsageError } from './keys/keys-command.js';
import { RotationError } from './keys/rotation.js';

const usage = `usage: latchkey <command> …      (or: npm run latchkey -- <command> …)

commands:
  keys …          signing keys: list, generate, rotate, revoke, prune (see "latchkey keys --help")
  users …         accounts: create, list, show, disable, enable, set-roles, revoke-sessions, reset-password
  admin-keys …    admin API keys: create, list, revoke
  audit …         the audit trail: tail [--follow]
  incident …      revoke-all [--role R] --yes: every session of every user (or of a role) created before now

Every command but "keys" works on the configured Redis store (REDIS_URL, REDIS_SENTINELS or
REDIS_CLUSTER_NODES, REDIS_KEY_PREFIX, ...), the same environment the server reads.
`;

/** The one entry point of the `latchkey` command: dispatches to the command's module. Returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'keys':
      return runKeys(rest);
    // Loaded on demand: the keys commands need neither the store nor the services.
    case 'users':
      return (await import('./admin/cli.js')).runUsers(rest);
    case 'admin-keys':
      return (await import('./admin/cli.js')).runAdminKeys(rest);
    case 'audit':
      return (await import('./admin/cli.js')).runAudit(rest);
    case 'incident':
      return (await import('./incident-cli.js')).runIncident(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`latchkey: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

/** Runs the CLI as a program: messages for humans on stderr, 2 for usage and configuration errors, 1 for the rest. */
export function main(argv: string[], name = 'latchkey'): void {
  runCli(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const message = err instanceof ApiError ? err.description : (err as Error).message;
      process.stderr.write(`${name}: ${message}\n`);
      if (err instanceof UsageError) process.stderr.write(`\n${keysUsage}`);
      if (err instanceof CliError && err.usage) process.stderr.write(`\n${err.usage}`);
      const usageLike = err instanceof UsageError || err instanceof RotationError || err instanceof ConfigError || (err instanceof CliError && err.code === 2);
      process.exit(usageLike ? 2 : 1);
    },
  );
}
