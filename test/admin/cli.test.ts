import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../../src/store/redis-store.js';
import { buildTestAdmin, buildTestApp, testKeysDir, type TestApp } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { bearer, loginNative, post, PASSWORD, uniqueEmail } from '../helpers/client.js';
import { testRedisUrl } from '../support/redis.js';

const lines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the users, admin-keys and audit CLI, on the store of a running app', () => {
  let t: TestApp;
  let admin: FastifyInstance;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await buildTestApp('redis', {}, { clock: Date.now });
    admin = await buildTestAdmin(t);
    env = {
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: (t.store as RedisStore).keyPrefix,
      LATCHKEY_ISSUER: t.config.issuer,
      LATCHKEY_KEYS_DIR: await testKeysDir(),
      LATCHKEY_ARGON2_MEMORY_KIB: '19456',
    };
  });
  afterAll(async () => {
    await admin.close();
    await t.close();
  });

  it('signing-key changes made with "latchkey keys" are in the audit trail, with the CLI as actor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lk-audit-keys-'));
    const keysEnv = { ...env, LATCHKEY_KEYS_DIR: dir };
    expect((await runCli(['keys', 'generate'], keysEnv)).code).toBe(0);
    const rotated = await runCli(['keys', 'rotate', '--now', '--yes'], keysEnv);
    expect(rotated.code).toBe(0);
    const kid = /^ {2}(\S+): published now/m.exec(rotated.stdout)?.[1];
    expect(kid).toBeDefined();
    await t.app.latchkey.audit.flush();
    const { entries } = await t.app.latchkey.audit.query({ limit: 20 });
    const keyEntries = entries.filter((e) => e.type.startsWith('signing_key'));
    expect(keyEntries.map((e) => e.type)).toEqual(['signing_key_rotated', 'signing_key_generated']);
    expect(keyEntries[0]).toMatchObject({ actor: 'cli', details: { kid, immediate: true } });
    // Without Redis the change is made all the same, and the CLI says it is not audited.
    const first = String(keyEntries[1]!.details.kid);
    const withoutRedis = await runCli(['keys', 'revoke', first, '--yes'], { LATCHKEY_KEYS_DIR: dir });
    expect(withoutRedis.code).toBe(0);
    expect(withoutRedis.stderr).toMatch(/not in the audit trail/);
  });

  it('creates an admin from standard input, disables a user (refused by /verify at once), manages keys, tails the audit trail', async () => {
    const email = uniqueEmail('cli');
    const created = await runCli(['users', 'create', '--email', email, '--role', 'admin'], env, `${PASSWORD}\n`);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const user = lines(created.stdout)[0]!;
    expect(user).toMatchObject({ email, roles: ['admin'], disabled: false });
    // The running app sees the account the CLI made, with the password from standard input.
    const login = await loginNative(t.app, email);
    expect((await admin.inject({ url: '/admin/users', headers: bearer(login.access) })).statusCode).toBe(200);

    const weak = await runCli(['users', 'create', '--email', uniqueEmail()], env, 'password\n');
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/common passwords/);

    const disabled = await runCli(['users', 'disable', email], env);
    expect(disabled.code).toBe(0);
    expect(lines(disabled.stdout)[0]).toMatchObject({ id: user.id, disabled: true, session_count: 0 });
    expect((await t.app.inject({ url: '/verify', headers: bearer(login.access) })).statusCode).toBe(401);
    expect((await post(t.app, '/login', { email, password: PASSWORD })).statusCode).toBe(401);
    expect((await runCli(['users', 'show', 'nobody@example.com'], env)).code).toBe(1);

    const key = await runCli(['admin-keys', 'create', '--name', 'ci-cli'], env);
    expect(key.code).toBe(0);
    expect(key.stderr).toMatch(/only time the key is shown/);
    const { key: secret, created_by } = lines(key.stdout)[0] as { key: string; created_by: string };
    expect(created_by).toBe('cli');
    expect((await admin.inject({ url: '/admin/users', headers: bearer(secret) })).statusCode).toBe(200);
    expect((await runCli(['admin-keys', 'revoke', 'ci-cli'], env)).code).toBe(0);
    expect((await admin.inject({ url: '/admin/users', headers: bearer(secret) })).statusCode).toBe(401);

    const tail = await runCli(['audit', 'tail', '--user', email, '--limit', '10'], env);
    expect(tail.code).toBe(0);
    const entries = lines(tail.stdout);
    expect(entries.map((e) => e.type)).toEqual(
      expect.arrayContaining(['account_created', 'login_succeeded', 'account_disabled', 'user_sessions_revoked']),
    );
    expect(entries.find((e) => e.type === 'account_disabled')).toMatchObject({ actor: 'cli', user_id: user.id });
    expect(entries.find((e) => e.type === 'login_succeeded')).toMatchObject({ actor: `user:${String(user.id)}`, ip: '127.0.0.1' });
    // Oldest first.
    expect(entries[0]!.type).toBe('account_created');
  }, 180_000);

  it('says how to get a first admin when no Redis is configured, and follows CLI conventions for usage', async () => {
    const noRedis = await runCli(['users', 'list'], { LATCHKEY_KEYS_DIR: env.LATCHKEY_KEYS_DIR });
    expect(noRedis.code).toBe(2);
    expect(noRedis.stderr).toMatch(/embedded store lives inside the server process/);
    expect(noRedis.stderr).toMatch(/LATCHKEY_BOOTSTRAP_ADMIN_EMAIL/);
    const help = await runCli(['users', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: latchkey users/);
    const unknown = await runCli(['users', 'frobnicate'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command/);
  }, 120_000);
});
