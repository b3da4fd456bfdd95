import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { silentLogger, testConfig } from '../helpers/app.js';
import { PASSWORD, post, uniqueEmail } from '../helpers/client.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

/** A password-protected Redis of the test's own; latchkey reads the password from a file, as from a secret. */
describe('REDIS_PASSWORD_FILE against a Redis that requires a password', () => {
  let redis: RedisServerHandle;
  let secretFile: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', 'file-secret-9c1f');
    admin.disconnect();
    const dir = await mkdtemp(join(tmpdir(), 'lk-secret-'));
    secretFile = join(dir, 'redis_password');
    await writeFile(secretFile, 'file-secret-9c1f\n', { mode: 0o600 });
  });
  afterAll(async () => redis?.stop());

  async function ready(env: Record<string, string>) {
    const app = await buildApp(await testConfig({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'lk-pwfile:', ...env }), { logger: silentLogger() });
    try {
      const readyz = (await app.inject('/readyz')).statusCode;
      const registered = (await post(app, '/register', { email: uniqueEmail('pwfile'), password: PASSWORD })).statusCode;
      return { readyz, registered };
    } finally {
      await app.close();
    }
  }

  it('connects with the password from the file', async () => {
    expect(await ready({ REDIS_PASSWORD_FILE: secretFile })).toEqual({ readyz: 200, registered: 201 });
  });

  it('without it the store refuses, and latchkey answers 503', async () => {
    expect(await ready({})).toEqual({ readyz: 503, registered: 503 });
  });
});
