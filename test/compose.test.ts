import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createVerifier, VerifyError } from '@latchkey/verifier';
import { RedisStore } from '../src/store/redis-store.js';
import { buildTestApp, silentLogger } from './helpers/app.js';
import { loginNative, post, register } from './helpers/client.js';
import { startRedisServer } from './support/redis-server.js';

/** The Redis arguments of docker-compose.yml, with its variables filled in. */
async function composeRedisArgs(vars: Record<string, string>): Promise<string[]> {
  const compose = parse(await readFile('docker-compose.yml', 'utf8')) as { services: { redis: { command: string[] } } };
  return compose.services.redis.command.slice(1).map((arg) =>
    arg.replace(/\$\{(\w+)(?::[?-][^}]*)?\}/g, (_m, name: string) => {
      if (!(name in vars)) throw new Error(`docker-compose.yml uses \${${name}}, which the test does not set`);
      return vars[name]!;
    }),
  );
}

describe('docker-compose.yml', () => {
  it('its Redis wants a password, and its verifier user can check revocations but never read a credential', async () => {
    const args = await composeRedisArgs({ REDIS_PASSWORD: 'latchkey-secret', REDIS_VERIFIER_PASSWORD: 'verifier-secret' });
    // The persistence and eviction settings are the compose file's too; only the data folder is the test's.
    // The password is set once the server answers (the start-up check pings without one).
    const at = args.indexOf('--requirepass');
    expect(at).toBeGreaterThanOrEqual(0);
    const [password] = args.splice(at, 2).slice(1);
    const redis = await startRedisServer({ extraArgs: args });
    const setup = new Redis(redis.url);
    await setup.config('SET', 'requirepass', password!);
    setup.disconnect();
    const keyPrefix = 'lk:';
    const store = new RedisStore({ url: `redis://:latchkey-secret@127.0.0.1:${redis.port}`, keyPrefix, commandTimeoutMs: 2000, logger: silentLogger() });
    const anonymous = new Redis(redis.url, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    anonymous.on('error', () => undefined);
    const client = new Redis(`redis://verifier:verifier-secret@127.0.0.1:${redis.port}`, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      expect(await store.connect()).toBe(true);
      await anonymous.connect().catch(() => undefined);
      await expect(anonymous.get('lk:epoch')).rejects.toThrow(/NOAUTH/);

      const t = await buildTestApp('redis', {}, { store, clock: Date.now });
      try {
        const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
        const v = createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: jwks, redis: client, keyPrefix });
        await v.ready();
        const user = await register(t.app);
        const login = await loginNative(t.app, user.email);
        expect((await v.verify(login.access)).sub).toBe(user.id);
        await post(t.app, '/logout', { refresh_token: login.refresh });
        const deadline = Date.now() + 3000;
        let code = 'accepted';
        while (code === 'accepted' && Date.now() < deadline) {
          code = await v.verify(login.access).then(() => 'accepted', (err: unknown) => (err instanceof VerifyError ? err.code : String(err)));
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(code).toBe('revoked');
        await expect(client.call('HGET', `lk:{${user.id}}:u`, 'pw')).rejects.toThrow(/NOPERM/);
        await expect(client.call('SET', 'lk:epoch', 'x')).rejects.toThrow(/NOPERM/);
        await v.close();
      } finally {
        await t.close();
      }
    } finally {
      client.disconnect();
      anonymous.disconnect();
      await store.close();
      await redis.stop();
    }
  });
});
