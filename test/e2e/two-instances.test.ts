import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFirstKey } from '../../src/keys/rotation.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

/**
 * Two latchkey processes on one Redis, as behind a load balancer. Each remembers the tokens its forward
 * auth decided; a revocation made through one must reach the other's memory through the revocation stream
 * within about a second.
 */

const children: ChildProcess[] = [];

async function startLatchkey(redisUrl: string, keysDir: string): Promise<string> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=latchkey-source', 'src/server.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      REDIS_URL: redisUrl,
      LATCHKEY_KEYS_DIR: keysDir,
      LATCHKEY_ISSUER: 'https://auth.example.com',
      LATCHKEY_METRICS_PORT: '0',
      LATCHKEY_ADMIN_PORT: '0',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`latchkey exited with ${child.exitCode}:\n${stderr}`);
    if ((await fetch(`${origin}/readyz`).then((r) => r.status, () => 0)) === 200) return origin;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`latchkey on ${origin} did not become ready:\n${stderr}`);
}

const json = { 'content-type': 'application/json' };
const verify = (origin: string, token: string) => fetch(`${origin}/verify`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

describe('two latchkey processes on one Redis', () => {
  let redis: RedisServerHandle;
  let a: string;
  let b: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    const keysDir = await mkdtemp(join(tmpdir(), 'lk-two-'));
    await generateFirstKey(keysDir, [], Date.now() - 60_000, 2048);
    [a, b] = await Promise.all([startLatchkey(redis.url, keysDir), startLatchkey(redis.url, keysDir)]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(
      children.map((c) => new Promise<void>((resolve) => (c.exitCode !== null ? resolve() : (c.once('exit', () => resolve()), c.kill('SIGTERM'))))),
    );
    await redis?.stop();
  });

  async function login(origin: string) {
    const email = `two-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple';
    expect((await fetch(`${a}/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) })).status).toBe(201);
    const res = await fetch(`${origin}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) });
    return (await res.json()) as { access_token: string; refresh_token: string };
  }

  /** Milliseconds until `check` holds, polling; throws after `ms`. */
  async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < ms) {
      if (await check()) return Date.now() - started;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`not within ${ms} ms`);
  }

  it('logout on A is refused by /verify on B within about a second, though B had the token cached', async () => {
    const tokens = await login(a);
    const other = await login(a);
    // B decides both tokens and answers them from memory from then on.
    for (let i = 0; i < 20; i++) {
      expect(await verify(b, tokens.access_token)).toBe(200);
      expect(await verify(b, other.access_token)).toBe(200);
    }
    const res = await fetch(`${a}/logout`, { method: 'POST', headers: json, body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
    expect(res.status).toBe(204);
    // On A at once; on B through the stream. The bound allows for a loaded machine: the follower's read
    // blocks for at most a second, so on an idle one this is a few milliseconds.
    expect(await verify(a, tokens.access_token)).toBe(401);
    const took = await within(2500, async () => (await verify(b, tokens.access_token)) === 401);
    expect(took).toBeLessThan(2500);
    expect(await verify(b, other.access_token)).toBe(200);

    // logout-all on B reaches A.
    for (let i = 0; i < 5; i++) expect(await verify(a, other.access_token)).toBe(200);
    expect((await fetch(`${b}/logout-all`, { method: 'POST', headers: { authorization: `Bearer ${other.access_token}` } })).status).toBe(204);
    expect(await verify(b, other.access_token)).toBe(401);
    await within(2500, async () => (await verify(a, other.access_token)) === 401);
  });
});
