import { parseArgs } from 'node:util';
import type { CoreServices } from '../app.js';
import type { ActionContext } from '../audit/context.js';
import { auditView } from '../audit/audit.js';
import { CliError } from '../cli-error.js';
import { withCliServices } from '../cli-services.js';
import { loadConfig } from '../config.js';
import type { UserRecord } from '../store/store.js';
import { keyView } from './routes/api-keys.js';
import { roleList, userView } from './routes/users.js';


const usersUsage = `usage: latchkey users <command> [options]      (or: npm run users -- <command> [options])

commands (USER is an e-mail address or a user id):
  create --email E [--role R]...          create an account; the password is read from standard input
                                          (one line) or, on a terminal, from a prompt that does not echo
  list [--limit N]                        every account, one JSON object per line
  show USER                               roles, disabled, created, last login, session count
  disable USER                            no more logins; every session and access token revoked at once
  enable USER                             may log in again
  set-roles USER [--role R]... [--revoke] replace the roles (none without --role); they reach access tokens
                                          at the next refresh, or at once with --revoke (revokes every session)
  revoke-sessions USER [--session SID]    revoke one session, or every session and access token
  reset-password USER                     mail the user a password-reset link (needs LATCHKEY_SMTP_URL)
`;

const adminKeysUsage = `usage: latchkey admin-keys <command> [options]

commands:
  create --name NAME [--expires-in SECONDS]   create an admin API key; it is printed once, keep it safe
  list                                        live keys (never their secrets), one JSON object per line
  revoke ID|NAME                              the key stops working at once
`;

const auditUsage = `usage: latchkey audit tail [--follow] [--user USER] [--type TYPE] [--limit N]

Prints the latest N (default 20) entries of the audit trail, oldest first, one JSON object per line;
with --follow, keeps printing new entries as they come (Ctrl-C to stop).
`;

const noRedis = `no Redis configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES).
The embedded store lives inside the server process, so this command cannot reach it. For development:
  - start latchkey with LATCHKEY_BOOTSTRAP_ADMIN_EMAIL=you@example.com and
    LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE=<a file holding the password>: it creates that admin at start-up,
    who can then use the admin API (LATCHKEY_ADMIN_PORT, 3001) with an access token from POST /login;
  - or run Redis (e.g. docker compose up redis) and set REDIS_URL=redis://127.0.0.1:6379 for both.`;

const out = (value: unknown) => process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);

/** The server's services on the configured Redis, as actor `cli`; without Redis, how to get a first admin. */
async function withServices<T>(work: (core: CoreServices, context: ActionContext) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  if (!config.redis) throw new CliError(noRedis, 2);
  return withCliServices(config, work, process.env.LOG_LEVEL ?? 'warn');
}

async function findUser(core: CoreServices, ref: string | undefined, usage: string): Promise<UserRecord> {
  if (!ref) throw new CliError('name the user by e-mail address or id', 2, usage);
  const user = ref.includes('@') ? await core.accounts.findByEmail(ref) : await core.store.getUser(ref);
  if (!user) throw new CliError(`no user ${ref}`);
  return user;
}


type Options = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: boolean }>;
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], usage: string, options: Options): { values: Values; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...options, help: { type: 'boolean', short: 'h' } } });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    throw new CliError((err as Error).message, 2, usage);
  }
}

function roles(values: unknown): string[] {
  const parsed = roleList.safeParse((values as string[] | undefined) ?? []);
  if (!parsed.success) throw new CliError('--role: roles are 1-64 letters, digits or _.:-', 2);
  return [...new Set(parsed.data)];
}

/** `latchkey users …`. Returns the exit code. */
export async function runUsers(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, usersUsage, {
    email: { type: 'string' },
    role: { type: 'string', multiple: true },
    revoke: { type: 'boolean', default: false },
    session: { type: 'string' },
    limit: { type: 'string' },
  });
  const [command, ref] = positionals;
  if (values.help || !command) {
    process.stdout.write(usersUsage);
    return values.help ? 0 : 2;
  }
  const known = ['create', 'list', 'show', 'disable', 'enable', 'set-roles', 'revoke-sessions', 'reset-password'];
  if (!known.includes(command)) throw new CliError(`unknown command "users ${command}"`, 2, usersUsage);
  if (command === 'create' && typeof values.email !== 'string') throw new CliError('create needs --email', 2, usersUsage);
  // The password is read before connecting: a prompt should not wait on a Redis time-out.
  const password = command === 'create' ? await readPassword() : '';

  return withServices(async (core, context) => {
    switch (command) {
      case 'create': {
        const created = await core.accounts.register(String(values.email), password, context, roles(values.role));
        out(await userView(core, await core.accounts.get(created.id)));
        return 0;
      }
      case 'list': {
        const limit = Number(values.limit ?? 1000);
        if (!Number.isInteger(limit) || limit < 1) throw new CliError('--limit must be a positive whole number', 2);
        let cursor: string | undefined;
        let shown = 0;
        do {
          const page = await core.store.listUsers(cursor, Math.min(100, limit - shown));
          for (const user of page.users) out(await userView(core, user));
          shown += page.users.length;
          cursor = page.next ?? undefined;
        } while (cursor && shown < limit);
        return 0;
      }
      case 'show':
        out(await userView(core, await findUser(core, ref, usersUsage)));
        return 0;
      case 'disable': {
        const user = await findUser(core, ref, usersUsage);
        await core.accounts.disable(user.id, context);
        out(await userView(core, await core.accounts.get(user.id)));
        return 0;
      }
      case 'enable': {
        const user = await findUser(core, ref, usersUsage);
        await core.accounts.enable(user.id, context);
        out(await userView(core, await core.accounts.get(user.id)));
        return 0;
      }
      case 'set-roles': {
        const user = await findUser(core, ref, usersUsage);
        await core.accounts.setRoles(user.id, roles(values.role), Boolean(values.revoke), context);
        out(await userView(core, await core.accounts.get(user.id)));
        return 0;
      }
      case 'revoke-sessions': {
        const user = await findUser(core, ref, usersUsage);
        if (typeof values.session === 'string') {
          if (!(await core.revocations.revokeSession(user.id, values.session, 'admin', context))) throw new CliError(`no session ${values.session} of ${user.email}`);
        } else {
          await core.revocations.revokeUser(user.id, 'admin', context);
        }
        out(await userView(core, await core.accounts.get(user.id)));
        return 0;
      }
      default: {
        const user = await findUser(core, ref, usersUsage);
        if (!core.resets.mailEnabled) throw new CliError('reset mail is off: set LATCHKEY_SMTP_URL (or LATCHKEY_SMTP_URL_FILE)');
        await core.resets.start(user, context);
        process.stderr.write(`reset link mailed to ${user.email}\n`);
        return 0;
      }
    }
  });
}

/** `latchkey admin-keys …`. Returns the exit code. */
export async function runAdminKeys(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, adminKeysUsage, { name: { type: 'string' }, 'expires-in': { type: 'string' } });
  const [command, ref] = positionals;
  if (values.help || !command) {
    process.stdout.write(adminKeysUsage);
    return values.help ? 0 : 2;
  }
  if (!['create', 'list', 'revoke'].includes(command)) throw new CliError(`unknown command "admin-keys ${command}"`, 2, adminKeysUsage);
  if (command === 'create' && !/^[A-Za-z0-9_.:-]{1,64}$/.test(String(values.name ?? ''))) {
    throw new CliError('create needs --name (1-64 letters, digits or _.:-)', 2, adminKeysUsage);
  }
  if (command === 'revoke' && !ref) throw new CliError('revoke needs the id or name of a key', 2, adminKeysUsage);
  const expiresIn = values['expires-in'] === undefined ? null : Number(values['expires-in']);
  if (expiresIn !== null && (!Number.isInteger(expiresIn) || expiresIn < 60)) throw new CliError('--expires-in must be at least 60 seconds', 2);

  return withServices(async (core, context) => {
    if (command === 'create') {
      const { record, key } = await core.adminKeys.create(String(values.name), expiresIn, context);
      out({ ...keyView(record), key });
      process.stderr.write('This is the only time the key is shown: store it now (e.g. in a secret manager).\n');
    } else if (command === 'list') {
      for (const key of await core.adminKeys.list()) out(keyView(key));
    } else if (!(await core.adminKeys.revoke(ref!, context))) {
      throw new CliError(`no admin key ${ref}`);
    } else {
      process.stderr.write(`revoked ${ref}\n`);
    }
    return 0;
  });
}

/** `latchkey audit tail …`. Returns the exit code (with --follow, only when interrupted). */
export async function runAudit(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, auditUsage, {
    follow: { type: 'boolean', short: 'f', default: false },
    user: { type: 'string' },
    type: { type: 'string' },
    limit: { type: 'string' },
  });
  if (values.help || positionals[0] !== 'tail') {
    process.stdout.write(auditUsage);
    return values.help ? 0 : 2;
  }
  const limit = Number(values.limit ?? 20);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CliError('--limit must be a whole number from 1 to 10000', 2);
  return withServices(async (core) => {
    let userId = typeof values.user === 'string' ? values.user : undefined;
    if (userId?.includes('@')) userId = (await core.accounts.findByEmail(userId))?.id ?? 'unknown';
    const type = typeof values.type === 'string' ? values.type : undefined;
    const page = await core.audit.query({ limit, ...(userId ? { userId } : {}), ...(type ? { type } : {}) });
    for (const e of page.entries.reverse()) out(auditView(e));
    if (!values.follow) return 0;
    let after = (await core.audit.query({ limit: 1 })).entries[0]?.id;
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    process.once('SIGTERM', () => (stop = true));
    while (!stop) {
      const batch = await core.audit.since(after, 500);
      for (const e of batch) {
        after = e.id;
        if ((userId === undefined || e.userId === userId) && (type === undefined || e.type === type)) out(auditView(e));
      }
      if (batch.length < 500) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return 0;
  });
}

/**
 * The new account's password: never from argv (it would show in `ps` and shell history). From standard
 * input when it is not a terminal (one line), else from a prompt that does not echo, asked twice.
 */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
    if (!line) throw new CliError('no password on standard input (one line expected)', 2);
    return line;
  }
  const first = await promptHidden('password: ');
  const second = await promptHidden('again: ');
  if (first !== second) throw new CliError('the passwords differ');
  return first;
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let value = '';
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
