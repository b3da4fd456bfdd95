import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../../src/store/redis-store.js';
import { buildTestApp, createTestStore, type TestApp, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import { testRedisUrl } from '../support/redis.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Runs a script with Node in `cwd` and returns what it printed (one JSON line). */
function node(cwd: string, script: string, env: Record<string, string>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out.trim().split('\n').pop()!));
      else reject(new Error(`node exited with ${code}:\n${out}\n${err}`));
    });
  });
}

/**
 * The verifier as a resource server gets it: built, packed with `npm pack`, installed from the tarball
 * into an empty project with jose and ioredis from the registry, and imported by name in a process of
 * its own — nothing from this repository's node_modules or sources is in reach.
 */
describe('@latchkey/verifier, installed from its tarball', () => {
  let scratch: string;
  let t: TestApp;
  let base: string;
  let prefix: string;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'lk-verifier-pkg-'));
    await run(npm, ['run', 'build', '--workspace', '@latchkey/verifier'], { cwd: root, timeout: 120_000 });
    const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', scratch], { cwd: join(root, 'packages/verifier'), timeout: 60_000 });
    const tarball = join(scratch, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
    await writeFile(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-resource-server', private: true, type: 'module' }));
    await run(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', tarball, 'jose', 'ioredis'], { cwd: scratch, timeout: 240_000 });

    const test = await createTestStore('redis', 'pkg');
    dispose = test.dispose;
    prefix = (test.store as RedisStore).keyPrefix;
    t = await buildTestApp('redis', {}, { store: test.store, clock: Date.now });
    base = await listenLocal(t.app);
  }, 400_000);

  afterAll(async () => {
    await t?.close();
    await dispose?.();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('brings only jose (and the ioredis the project chose): no argon2, Fastify or prom-client', async () => {
    const installed = await readdir(join(scratch, 'node_modules'));
    for (const heavy of ['argon2', 'fastify', 'prom-client', 'pino', 'zod', '@fastify', 'latchkey']) expect(installed).not.toContain(heavy);
    expect(existsSync(join(scratch, 'node_modules/@latchkey/verifier/dist/index.js'))).toBe(true);
    expect(existsSync(join(scratch, 'node_modules/@latchkey/verifier/src'))).toBe(false);
    const manifest = JSON.parse(await readFile(join(scratch, 'node_modules/@latchkey/verifier/package.json'), 'utf8'));
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['fastify-plugin', 'jose']);
  });

  it('verifies a real token from a running latchkey, and sees its revocation', async () => {
    const email = uniqueEmail('pkg');
    const json = { 'content-type': 'application/json' };
    await fetch(`${base}/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    const tokens = (await (await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) })).json()) as {
      access_token: string;
      refresh_token: string;
    };
    const script = `
      import { Redis } from 'ioredis';
      import { createVerifier, VerifyError } from '@latchkey/verifier';
      const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, lazyConnect: true });
      await redis.connect();
      const verifier = createVerifier({
        issuer: process.env.ISSUER, audience: process.env.AUDIENCE,
        jwksUrl: process.env.BASE + '/.well-known/jwks.json', redis, keyPrefix: process.env.PREFIX,
      });
      await verifier.ready();
      const out = {};
      try { out.claims = await verifier.verify(process.env.TOKEN); } catch (e) { out.error = e instanceof VerifyError ? e.code : String(e); }
      try { await verifier.verify('x.y.z'); } catch (e) { out.garbage = e instanceof VerifyError ? e.code : String(e); }
      if (process.env.LOGOUT) {
        await fetch(process.env.BASE + '/logout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: process.env.LOGOUT }) });
        const deadline = Date.now() + 3000;
        out.afterLogout = 'accepted';
        while (Date.now() < deadline) {
          try { await verifier.verify(process.env.TOKEN); } catch (e) { out.afterLogout = e instanceof VerifyError ? e.code : String(e); break; }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await verifier.close();
      redis.disconnect();
      console.log(JSON.stringify(out));
    `;
    const result = (await node(scratch, script, {
      REDIS_URL: testRedisUrl(),
      ISSUER: t.config.issuer,
      AUDIENCE: t.config.audience,
      BASE: base,
      PREFIX: prefix,
      TOKEN: tokens.access_token,
      LOGOUT: tokens.refresh_token,
    })) as { claims?: Record<string, unknown>; error?: string; garbage?: string; afterLogout?: string };
    expect(result.error).toBeUndefined();
    expect(result.claims).toMatchObject({ iss: t.config.issuer, client_id: 'latchkey-native' });
    expect(result.garbage).toBe('invalid');
    expect(result.afterLogout).toBe('revoked');
  });
});
