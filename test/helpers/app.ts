import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildAdminApp } from '../../src/admin/app.js';
import { buildApp, type AppOverrides } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { generateKeyFile, writeKeyFile } from '../../src/keys/key-file.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';
import type { AuthEvent } from '../../src/events.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../support/redis.js';
import { TestClock } from './clock.js';

export type StoreKind = 'memory' | 'redis';
export const storeKinds: StoreKind[] = ['memory', 'redis'];

export const ORIGIN = 'https://app.example.com';
export const silentLogger = () => pino({ level: 'silent' });

/** Listens on a free port of 127.0.0.1 and returns the origin, for tests that go over a real socket. */
export async function listenLocal(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

let sharedKeysDir: Promise<string> | undefined;

/** One signing key per test worker: RSA generation is slow enough to matter across many apps. */
export function testKeysDir(): Promise<string> {
  sharedKeysDir ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lk-keys-'));
    await writeKeyFile(dir, await generateKeyFile(new Date(Date.now() - 60_000)));
    return dir;
  })();
  return sharedKeysDir;
}

export async function testConfig(env: Record<string, string> = {}): Promise<Config> {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    LATCHKEY_ISSUER: 'https://auth.example.com',
    LATCHKEY_AUDIENCE: 'https://api.example.com',
    LATCHKEY_ALLOWED_ORIGINS: ORIGIN,
    LATCHKEY_KEYS_DIR: await testKeysDir(),
    // Every test client is 127.0.0.1 and tests race one session on purpose; the throttles have their own
    // tests (test/api/throttle.test.ts).
    LATCHKEY_LOGIN_RATE_LIMIT: '100000',
    LATCHKEY_ACCOUNT_RATE_LIMIT: '100000',
    LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: '100000',
    LATCHKEY_REFRESH_RATE_LIMIT: '100000',
    LATCHKEY_SESSION_REFRESH_RATE_LIMIT: '100000',
    ...env,
  });
}

export interface TestStore {
  store: Store;
  /** Removes what this store wrote (Redis: only keys under its own prefix) and closes it. */
  dispose(): Promise<void>;
}

export async function createTestStore(kind: StoreKind, name = 'test', url = testRedisUrl()): Promise<TestStore> {
  if (kind === 'memory') {
    const store = new MemoryStore();
    return { store, dispose: () => store.close() };
  }
  const keyPrefix = uniquePrefix(name);
  const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 2000, logger: silentLogger() });
  if (!(await store.connect())) throw new Error(`test redis at ${url} is not reachable`);
  return {
    store,
    dispose: async () => {
      await deleteKeysWithPrefix(url, keyPrefix).catch(() => undefined);
      await store.close();
    },
  };
}

export interface TestApp {
  app: FastifyInstance;
  clock: TestClock;
  store: Store;
  config: Config;
  events: AuthEvent[];
  close(): Promise<void>;
}

/** Builds the app exactly as production does, with a test clock and a store of the given kind. */
export async function buildTestApp(
  kind: StoreKind,
  env: Record<string, string> = {},
  overrides: AppOverrides = {},
): Promise<TestApp> {
  const clock = new TestClock();
  const { store, dispose } = overrides.store ? { store: overrides.store, dispose: async () => {} } : await createTestStore(kind, 'app');
  const config = await testConfig(env);
  const events: AuthEvent[] = [];
  const app = await buildApp(config, {
    clock: clock.now,
    logger: silentLogger(),
    onEvent: (e) => events.push(e),
    ...overrides,
    store,
  });
  await app.ready();
  return {
    app,
    clock,
    store,
    config,
    events,
    close: async () => {
      await app.close();
      await dispose();
    },
  };
}

/** The admin API of a test app: same config and services, built without listening. */
export async function buildTestAdmin(t: TestApp): Promise<FastifyInstance> {
  const admin = await buildAdminApp(t.config, t.app.latchkey);
  await admin.ready();
  return admin;
}
