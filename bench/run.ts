/**
 * npm run bench [-- --quick] [-- --only refresh,peer,login,jwks,verify,endpoints,verifier,scaling,memory]
 *
 * Starts a private redis-server and latchkey on 127.0.0.1, drives load from separate processes for a
 * bounded time, and compares every figure with a baseline measured in the same run. Prints a table,
 * writes bench/results/<time>.json and, for full runs, BENCHMARKS.md's table and the refresh chart.
 * `--quick` is a smoke run (short, one repetition, results to a temporary file) used by the test suite.
 * `--only` runs the named sections alone (to compare two builds quickly); its results go to a temporary file
 * and BENCHMARKS.md is left as it is. With BENCH_CPU_PROF=<dir> set, the latchkey processes write CPU profiles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import argon2 from 'argon2';
import pino from 'pino';
import { generateFirstKey } from '../src/keys/rotation.js';
import { RedisStore } from '../src/store/redis-store.js';
import { KeyStore } from '../src/keys/keystore.js';
import { AccessTokens } from '../src/tokens/access-token.js';
import { newUserId } from '../src/accounts/accounts.js';
import { hashSecret, newMacKey, newSecret, newSessionId, newSuccessorNonce, successorSecret } from '../src/tokens/refresh-token.js';
import { freePort, startRedisServer } from '../test/support/redis-server.js';
import type { LoadResult, LoadSpec } from './load.js';
import { refreshChart } from './chart.js';
import { startOidcProvider } from './oidc-peer.js';

const quick = process.argv.includes('--quick');
const SECTIONS = ['refresh', 'peer', 'login', 'jwks', 'verify', 'endpoints', 'verifier', 'scaling', 'memory'] as const;
type Section = (typeof SECTIONS)[number];
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg >= 0 ? (process.argv[onlyArg + 1] ?? '').split(',') : null;
for (const name of only ?? []) if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`--only: unknown section ${name} (${SECTIONS.join(', ')})`);
const want = (section: Section) => only === null || only.includes(section);
const DURATION = quick ? 1000 : 5000;
const RUNS = quick ? 1 : 3;
const SWEEP = quick ? [8] : [1, 8, 32, 64];
const C = quick ? 8 : 32;
const PASSWORD = 'correct horse battery staple';
/** latchkey's default hash concurrency on this machine; the argon2id baseline runs at the same. */
const HASHES = String(Math.min(4, availableParallelism()));
const children: ChildProcess[] = [];
const ISSUER = 'http://localhost:3000';

/** Every process runs the TypeScript sources, the workspace package's too (as `npm start` does). */
const NODE_ARGS = ['--import', 'tsx', '--conditions=latchkey-source'];

function run(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, nodeArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...nodeArgs, script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim().split('\n').pop() ?? '') : reject(new Error(`${script} failed:\n${err}`))));
  });
}

/** The spec goes through a file: a list of access tokens outgrows the 128 KiB a single argument may have. */
const load = async (spec: LoadSpec) => {
  const file = join(await mkdtemp(join(tmpdir(), 'lk-load-')), 'spec.json');
  await writeFile(file, JSON.stringify(spec));
  try {
    return JSON.parse(await run('bench/load.ts', [`@${file}`])) as LoadResult;
  } finally {
    await rm(file, { force: true });
  }
};
const micro = async (...args: string[]) => JSON.parse(await run('bench/micro.ts', args)) as Record<string, number>;
const microGc = async (...args: string[]) => JSON.parse(await run('bench/micro.ts', args, process.env, ['--expose-gc'])) as Record<string, number>;

function start(script: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, nodeArgs: string[] = []): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...nodeArgs, script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = out.match(ready);
      if (m) resolve(m);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}:\n${out.slice(-2000)}`)));
  });
}

/** CPU seconds (user + system) a process has used so far; Linux only (null elsewhere). */
async function cpuSeconds(pid: number | undefined): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields ? (Number(fields[11]) + Number(fields[12])) / 100 : null;
}

/**
 * CPU seconds of a process's main thread (the event loop) and of all its other threads together (libuv's
 * pool, where signatures and hashes run; V8's garbage-collector helpers); Linux only (null elsewhere).
 */
async function threadCpuSeconds(pid: number | undefined): Promise<{ main: number; others: number } | null> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => null);
  if (!tids) return null;
  let main = 0;
  let others = 0;
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!fields) continue;
    const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
    if (tid === String(pid)) main += seconds;
    else others += seconds;
  }
  return { main, others };
}

/** A latchkey process on `port`; with `adminPort`, its admin API listens there as in a deployment. */
async function startLatchkey(port: number, redisUrl: string, keysDir: string, adminPort = 0): Promise<string> {
  const origin = `http://127.0.0.1:${port}`;
  const exited = start(
    'src/server.ts',
    [],
    {
      ...process.env,
      PORT: String(port),
      REDIS_URL: redisUrl,
      LATCHKEY_KEYS_DIR: keysDir,
      LOG_LEVEL: 'warn',
      LATCHKEY_LOGIN_RATE_LIMIT: '0',
      LATCHKEY_ACCOUNT_RATE_LIMIT: '0',
      LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: '0',
      LATCHKEY_REFRESH_RATE_LIMIT: '0',
      LATCHKEY_SESSION_REFRESH_RATE_LIMIT: '0',
      LATCHKEY_MAX_SESSIONS_PER_USER: '1000',
      LATCHKEY_HASH_QUEUE: '1000',
      LATCHKEY_HASH_CONCURRENCY: HASHES,
      // Two instances run side by side; neither needs to serve its metrics.
      LATCHKEY_METRICS_PORT: '0',
      LATCHKEY_ADMIN_PORT: String(adminPort),
      LATCHKEY_ISSUER: ISSUER,
      // As `npm start` and the image run it.
      UV_THREADPOOL_SIZE: '8',
    },
    /$^/,
    // BENCH_CPU_PROF=<dir>: each latchkey process writes a V8 CPU profile there when it stops.
    process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [],
  );
  const ready = (async () => {
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${origin}/readyz`).then((r) => r.status, () => 0)) === 200) return origin;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`latchkey on ${origin} did not become ready`);
  })();
  return Promise.race([ready, exited.then(() => origin)]);
}

async function post(origin: string, path: string, body: unknown): Promise<Record<string, string>> {
  const res = await fetch(`${origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await res.json()) as Record<string, string>;
}

/** `n` sessions of one user, each a refresh token a load client will rotate. */
async function sessions(origin: string, email: string, n: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i += 8) {
    const batch = await Promise.all(Array.from({ length: Math.min(8, n - i) }, () => post(origin, '/login', { email, password: PASSWORD })));
    tokens.push(...batch.map((b) => b.refresh_token!));
  }
  return tokens;
}

interface Figure {
  median: number;
  min: number;
  max: number;
}
const figure = (xs: number[]): Figure => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
};

async function repeat<T>(times: number, f: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < times; i++) out.push(await f());
  return out;
}

/**
 * Runs `a` and its baseline `b` back to back, `times` times (A B A B …), so each ratio compares two
 * measurements taken seconds apart; the ratio reported is the median of the per-pair ratios.
 */
async function paired(times: number, a: () => Promise<number>, b: () => Promise<number>): Promise<{ a: Figure; b: Figure; ratio: Figure }> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < times; i++) {
    as.push(await a());
    bs.push(await b());
  }
  return { a: figure(as), b: figure(bs), ratio: figure(as.map((x, i) => x / bs[i]!)) };
}

async function memoryPerSession(redisUrl: string, prefix: string): Promise<{ sessionBytes: number; withUserBytes: number; sessions: number }> {
  const raw = new Redis(redisUrl);
  try {
    let cursor = '0';
    let sessionBytes = 0;
    let userBytes = 0;
    let sessions = 0;
    do {
      const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const bytes = Number(await raw.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
        const rest = key.slice(prefix.length);
        // The account (record, revocation state, e-mail index) is the user's; every other key of a user's
        // tag is there for its sessions, so a key added later is counted without a change here.
        if (/^\{[^}]+\}:(u|x)$|^e:/.test(rest)) userBytes += bytes;
        else if (/^\{[^}]+\}:/.test(rest)) sessionBytes += bytes;
        if (/^\{[^}]+\}:s:/.test(rest)) sessions++;
      }
    } while (cursor !== '0');
    return { sessionBytes: sessionBytes / sessions, withUserBytes: (sessionBytes + userBytes) / sessions, sessions };
  } finally {
    raw.disconnect();
  }
}

/**
 * Access tokens for forward auth: `users` users with `perUser` live sessions each, made directly in the
 * store latchkey uses and signed with its key, as logins would have made them (logins cost an argon2id
 * hash each, which would dominate the set-up).
 */
async function accessTokens(redisUrl: string, keysDir: string, users: number, perUser: number): Promise<string[]> {
  const silent = pino({ level: 'silent' });
  const store = new RedisStore({ url: redisUrl, keyPrefix: 'lk:', commandTimeoutMs: 5000, logger: silent });
  await store.connect();
  const keys = new KeyStore(keysDir, silent);
  await keys.load();
  const access = new AccessTokens(keys, { issuer: ISSUER, audience: ISSUER, ttlSeconds: 900, clockSkewSeconds: 5 });
  const tokens: string[] = [];
  const now = Date.now();
  for (let u = 0; u < users; u++) {
    const userId = newUserId();
    await store.createUser({ id: userId, email: `${userId}@example.com`, passwordHash: 'unused', roles: u % 2 ? ['reader'] : [], disabled: false, createdAt: now, revokedAfter: 0 });
    for (let k = 0; k < perUser; k++) {
      const sessionId = newSessionId();
      const created = await store.createSession({
        userId,
        sessionId,
        secretHash: hashSecret(newSecret()),
        macKey: newMacKey(),
        channel: 'body',
        userAgent: null,
        ip: null,
        now,
        refreshTtlMs: 86_400_000,
        absoluteTtlMs: 86_400_000,
        maxSessions: 50,
      });
      if (created.status !== 'created') throw new Error('could not create a bench session');
      tokens.push((await access.sign({ userId, sessionId, roles: created.roles, now, notAfter: created.absoluteExpiresAt, inline: true })).token);
    }
  }
  keys.stop();
  await store.close();
  // Interleaved, so consecutive requests are different users.
  return tokens.sort(() => Math.random() - 0.5);
}

async function main(): Promise<void> {
  const redis = await startRedisServer();
  const keysDir = await mkdtemp(join(tmpdir(), 'lk-bench-keys-'));
  await generateFirstKey(keysDir, [], Date.now() - 1000, 2048);
  // The measured process runs its admin API as a deployment does.
  const origin = await startLatchkey(await freePort(), redis.url, keysDir, await freePort());
  const latchkeyPid = children[0]?.pid;
  const email = `bench-${Date.now()}@example.com`;
  await post(origin, '/register', { email, password: PASSWORD });
  const report: Record<string, unknown> = {};
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const once = <T>(make: () => Promise<T>) => {
    let made: Promise<T> | undefined;
    return () => (made ??= make());
  };
  /** CPU µs per request of `pid` while `run` drives it. */
  const measured = async (pid: number | undefined, into: number[], run: () => Promise<LoadResult>) => {
    const before = await cpuSeconds(pid);
    const res = await run();
    const after = await cpuSeconds(pid);
    if (before !== null && after !== null && res.requests > 0) into.push(((after - before) * 1e6) / res.requests);
    return res;
  };
  /** Access tokens of many users, each presented again and again (forward auth's hot path). */
  const hotTokens = once(() => accessTokens(redis.url, keysDir, quick ? 50 : 500, 4));
  /** Another latchkey process on the same Redis and keys; with `adminPort`, its admin API listens there. */
  const another = async (adminPort = 0) => {
    const url = await startLatchkey(await freePort(), redis.url, keysDir, adminPort);
    return { url, pid: children[children.length - 1]?.pid };
  };
  /** The second process of the scaling section, without the admin API. */
  const plain = once(() => another());
  /** A bare Fastify server: the JWKS bytes and /verify's headers, nothing else. */
  const bareServer = once(async () => {
    const jwksBody = await (await fetch(`${origin}/.well-known/jwks.json`)).text();
    const url = (await start('bench/bare-jwks.ts', [jwksBody], process.env, /listening on (http:\/\/\S+)/))[1]!;
    return { url, pid: children[children.length - 1]?.pid };
  });
  const verifyLoad = async (url: string, tokens: string[]) => {
    const res = await load({ kind: 'verify', origins: [url], path: '/verify', concurrency: C, durationMs: DURATION / 2, tokens });
    if (res.errors > 0) throw new Error(`GET /verify on ${url} failed ${res.errors} times`);
    return res;
  };

  // A short warm-up, so the first figure does not measure the JIT compiler.
  await load({ kind: 'refresh-latchkey', origins: [origin], path: '/refresh', concurrency: 8, durationMs: Math.min(DURATION, 3000), tokens: await sessions(origin, email, 8) });

  // 1. Refresh throughput against the RS256 signing ceiling, across concurrency.
  const sweep: Array<{ concurrency: number; rps: Figure; p99: Figure; ceiling: Figure; ratio: Figure }> = [];
  if (want('refresh')) {
    for (const c of SWEEP) {
      const p99s: number[] = [];
      let errors = 0;
      const r = await paired(
        RUNS,
        async () => {
          const res = await load({ kind: 'refresh-latchkey', origins: [origin], path: '/refresh', concurrency: c, durationMs: DURATION, tokens: await sessions(origin, email, c) });
          p99s.push(res.p99);
          errors += res.errors;
          return res.rps;
        },
        async () => (await micro('sign', String(DURATION), String(c))).opsPerSec!,
      );
      sweep.push({ concurrency: c, rps: r.a, p99: figure(p99s), ceiling: r.b, ratio: r.ratio });
      log(`refresh c=${c}: ${r.a.median.toFixed(0)} req/s (errors ${errors})`);
    }
    report.refresh = sweep;
  }

  // 1b. The peer: oidc-provider with refresh-token rotation and RS256 JWT access tokens, on the same Redis.
  if (want('peer')) {
    try {
      const peer = await startOidcProvider(redis.url, start);
      const peerPid = children[children.length - 1]?.pid;
      const cpuPerRefresh: number[] = [];
      const eventLoopPerRefresh: number[] = [];
      const peerCpuPerRefresh: number[] = [];
      // Five pairs: the peer's rate swings more than latchkey's from one run to the next.
      const r = await paired(
        quick ? 1 : 5,
        async () => {
          const tokens = await sessions(origin, email, C);
          const before = await threadCpuSeconds(latchkeyPid);
          const res = await measured(latchkeyPid, cpuPerRefresh, () => load({ kind: 'refresh-latchkey', origins: [origin], path: '/refresh', concurrency: C, durationMs: DURATION, tokens }));
          const after = await threadCpuSeconds(latchkeyPid);
          if (before && after && res.requests > 0) eventLoopPerRefresh.push(((after.main - before.main) * 1e6) / res.requests);
          return res.rps;
        },
        async () => {
          const tokens = await peer.refreshTokens(C);
          const res = await measured(peerPid, peerCpuPerRefresh, () => load({ kind: 'refresh-form', origins: [peer.origin], path: peer.tokenPath, concurrency: C, durationMs: DURATION, tokens, client: peer.client }));
          if (res.errors > 0) throw new Error(`oidc-provider refresh failed ${res.errors} times`);
          return res.rps;
        },
      );
      // The floor of a refresh: one RS256 signature, in CPU µs on one thread.
      const signMicros = figure(await repeat(RUNS, async () => (await micro('sign1', '1000')).microsPerSign!));
      report.peer = {
        latchkey: r.a,
        oidcProvider: r.b,
        ratio: r.ratio,
        cpuMicrosPerRefresh: cpuPerRefresh.length > 0 ? figure(cpuPerRefresh) : null,
        // The part on the event loop; the rest is the signature on libuv's pool and the GC helpers.
        eventLoopMicrosPerRefresh: eventLoopPerRefresh.length > 0 ? figure(eventLoopPerRefresh) : null,
        oidcProviderCpuMicrosPerRefresh: peerCpuPerRefresh.length > 0 ? figure(peerCpuPerRefresh) : null,
        rs256SignMicros: signMicros,
      };
      log(`oidc-provider refresh c=${C}: ${r.b.median.toFixed(0)} req/s`);
    } catch (err) {
      report.peer = { error: (err as Error).message.split('\n')[0] };
      log(`oidc-provider peer failed: ${(err as Error).message}`);
    }
  }

  // 2. Login against raw argon2id, and responsiveness while logins saturate the CPU.
  if (want('login')) {
    const loginBody = JSON.stringify({ email, password: PASSWORD });
    const login = await paired(
      RUNS,
      async () => (await load({ kind: 'login', origins: [origin], path: '/login', concurrency: 16, durationMs: DURATION, body: loginBody })).rps,
      async () => (await micro('argon2', String(DURATION), HASHES)).opsPerSec!,
    );
    const idleJwks = await load({ kind: 'get', origins: [origin], path: '/.well-known/jwks.json', concurrency: 4, durationMs: DURATION });
    const [busyJwks, busyRefresh] = await Promise.all([
      load({ kind: 'get', origins: [origin], path: '/.well-known/jwks.json', concurrency: 4, durationMs: DURATION }),
      (async () => load({ kind: 'refresh-latchkey', origins: [origin], path: '/refresh', concurrency: 4, durationMs: DURATION, tokens: await sessions(origin, email, 4) }))(),
      load({ kind: 'login', origins: [origin], path: '/login', concurrency: 16, durationMs: DURATION, body: loginBody }),
    ]);
    report.login = { rps: login.a, argon2: login.b, ratio: login.ratio, jwksP99Idle: idleJwks.p99, jwksP99UnderLogin: busyJwks.p99, refreshP99UnderLogin: busyRefresh.p99 };
  }

  // 3. JWKS against a bare Fastify route serving the same bytes.
  if (want('jwks')) {
    const bare = await bareServer();
    // Short runs in many pairs: at ~20 000 req/s a few seconds of a noisy neighbour decide a long run.
    // Server CPU per request is measured too: it barely moves with the load generator or the neighbours.
    const cpuPerRequest: { latchkey: number[]; bare: number[] } = { latchkey: [], bare: [] };
    const jwksRun = async (url: string, pid: number | undefined, into: number[]) =>
      (await measured(pid, into, () => load({ kind: 'get', origins: [url], path: '/.well-known/jwks.json', concurrency: C, durationMs: DURATION / 2 }))).rps;
    const jwks = await paired(
      quick ? 1 : 3 * RUNS,
      () => jwksRun(origin, latchkeyPid, cpuPerRequest.latchkey),
      () => jwksRun(bare.url, bare.pid, cpuPerRequest.bare),
    );
    const cpu = cpuPerRequest.latchkey.length > 0 ? { latchkey: figure(cpuPerRequest.latchkey), bare: figure(cpuPerRequest.bare) } : null;
    report.jwks = { latchkey: jwks.a, bare: jwks.b, ratio: jwks.ratio, cpuMicrosPerRequest: cpu };
  }

  // 3b. Forward auth: GET /verify with hot tokens (many users, each token presented again and again),
  // revocation checked, against a bare route answering 200 with the same headers. Throughput, p99 at C
  // connections, and server CPU per request, in A/B pairs like JWKS.
  if (want('verify')) {
    const bare = await bareServer();
    const hot = await hotTokens();
    // Every token seen once, so the pairs measure the hot path (first sight is a signature and a store call).
    await load({ kind: 'verify', origins: [origin], path: '/verify', concurrency: C, durationMs: Math.min(DURATION, 3000), tokens: hot });
    const verifyCpu: { latchkey: number[]; bare: number[] } = { latchkey: [], bare: [] };
    const verifyP99: { latchkey: number[]; bare: number[] } = { latchkey: [], bare: [] };
    const verifyRun = async (url: string, pid: number | undefined, side: 'latchkey' | 'bare') => {
      const res = await measured(pid, verifyCpu[side], () => verifyLoad(url, hot));
      verifyP99[side].push(res.p99);
      return res.rps;
    };
    const fwd = await paired(
      quick ? 1 : 3 * RUNS,
      () => verifyRun(origin, latchkeyPid, 'latchkey'),
      () => verifyRun(bare.url, bare.pid, 'bare'),
    );
    report.forwardAuth = {
      tokens: hot.length,
      latchkey: fwd.a,
      bare: fwd.b,
      ratio: fwd.ratio,
      p99: { latchkey: figure(verifyP99.latchkey), bare: figure(verifyP99.bare) },
      cpuMicrosPerRequest: verifyCpu.latchkey.length > 0 ? { latchkey: figure(verifyCpu.latchkey), bare: figure(verifyCpu.bare) } : null,
    };
    log(`GET /verify c=${C}: ${fwd.a.median.toFixed(0)} req/s, bare ${fwd.b.median.toFixed(0)} req/s`);
  }

  // 3c. What the endpoints added after refresh and /verify cost them: a refresh through the OAuth token
  // endpoint against POST /refresh on the same process; /verify and refresh on a process with the admin API
  // listening against one without it, both started for this and warmed up alike. CPU per request beside each.
  if (want('endpoints')) {
    const hot = await hotTokens();
    const withAdmin = await another(await freePort());
    const other = await another();
    for (const side of [withAdmin, other]) {
      await load({ kind: 'verify', origins: [side.url], path: '/verify', concurrency: C, durationMs: Math.min(DURATION, 3000), tokens: hot });
      await load({ kind: 'refresh-latchkey', origins: [side.url], path: '/refresh', concurrency: 8, durationMs: Math.min(DURATION, 3000), tokens: await sessions(origin, email, 8) });
    }
    const cpu = { token: [] as number[], refresh: [] as number[], adminVerify: [] as number[], plainVerify: [] as number[], adminRefresh: [] as number[], plainRefresh: [] as number[] };
    const refreshRun = async (url: string, pid: number | undefined, into: number[], kind: 'refresh-latchkey' | 'refresh-form') => {
      const tokens = await sessions(origin, email, C);
      const res = await measured(pid, into, () => load({ kind, origins: [url], path: kind === 'refresh-form' ? '/token' : '/refresh', concurrency: C, durationMs: DURATION, tokens }));
      if (res.errors > 0) throw new Error(`refresh through ${kind} on ${url} failed ${res.errors} times`);
      return res.rps;
    };
    const tokenEndpoint = await paired(
      RUNS,
      () => refreshRun(origin, latchkeyPid, cpu.token, 'refresh-form'),
      () => refreshRun(origin, latchkeyPid, cpu.refresh, 'refresh-latchkey'),
    );
    const adminVerify = await paired(
      quick ? 1 : 3 * RUNS,
      async () => (await measured(withAdmin.pid, cpu.adminVerify, () => verifyLoad(withAdmin.url, hot))).rps,
      async () => (await measured(other.pid, cpu.plainVerify, () => verifyLoad(other.url, hot))).rps,
    );
    const adminRefresh = await paired(
      RUNS,
      () => refreshRun(withAdmin.url, withAdmin.pid, cpu.adminRefresh, 'refresh-latchkey'),
      () => refreshRun(other.url, other.pid, cpu.plainRefresh, 'refresh-latchkey'),
    );
    const both = (a: number[], b: number[]) => (a.length > 0 && b.length > 0 ? { a: figure(a), b: figure(b) } : null);
    report.endpoints = {
      tokenEndpoint: { ...tokenEndpoint, cpu: both(cpu.token, cpu.refresh) },
      adminVerify: { ...adminVerify, cpu: both(cpu.adminVerify, cpu.plainVerify) },
      adminRefresh: { ...adminRefresh, cpu: both(cpu.adminRefresh, cpu.plainRefresh) },
    };
    log(`POST /token refresh ${tokenEndpoint.a.median.toFixed(0)} req/s against /refresh ${tokenEndpoint.b.median.toFixed(0)} req/s`);
  }

  // 4. Resource-server verification; first sight with the Redis lookup at C concurrent verifications.
  if (want('verifier')) {
    const verify = await repeat(RUNS, () => micro('verify', String(DURATION), String(C), redis.url));
    report.verify = Object.fromEntries(Object.keys(verify[0]!).map((k) => [k, figure(verify.map((v) => v[k]!))]));
    report.verifierFlood = await microGc('flood', '0', String(quick ? 100_000 : 1_000_000));
    report.tokenCache = await micro('cache', String(quick ? 600 : 3000));
  }

  // 5. Scaling: a second latchkey process on the same Redis and keys.
  if (want('scaling')) {
    const second = (await plain()).url;
    const refreshRps = async (origins: string[]) =>
      (await load({ kind: 'refresh-latchkey', origins, path: '/refresh', concurrency: C, durationMs: DURATION, tokens: await sessions(origin, email, C) })).rps;
    const scaling = await paired(RUNS, () => refreshRps([origin, second]), () => refreshRps([origin]));
    report.scaling = { twoProcesses: scaling.a, oneProcess: scaling.b, ratio: scaling.ratio };
  }

  // 6. Memory per session, in steady state (each refreshed once, so it holds its grace record), N sessions of N users.
  if (want('memory')) {
    const n = quick ? 100 : 2000;
    const memPrefix = 'lkbench:';
    const store = new RedisStore({ url: redis.url, keyPrefix: memPrefix, commandTimeoutMs: 5000, logger: pino({ level: 'silent' }) });
    await store.connect();
    const passwordHash = await argon2.hash('x', { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      const userId = newUserId();
      const sessionId = newSessionId();
      await store.createUser({ id: userId, email: `${userId}@example.com`, passwordHash, roles: [], disabled: false, createdAt: t0, revokedAfter: 0 });
      // A session as the service makes it, refreshed once so it also holds a spent-token hash.
      const first = newSecret();
      const created = await store.createSession({
        userId,
        sessionId,
        secretHash: hashSecret(first),
        macKey: newMacKey(),
        channel: 'body',
        userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
        ip: '203.0.113.42',
        now: t0,
        refreshTtlMs: 7 * 86_400_000,
        absoluteTtlMs: 30 * 86_400_000,
        maxSessions: 50,
      });
      const nonce = newSuccessorNonce();
      await store.rotate({
        userId,
        sessionId,
        secretHash: hashSecret(first),
        tag: created.status === 'created' ? created.tag : '',
        channel: 'body',
        successorHash: hashSecret(successorSecret(first, nonce)),
        successorNonce: nonce,
        now: t0 + 1000,
        refreshTtlMs: 7 * 86_400_000,
        graceMs: 10_000,
        userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
        ip: '203.0.113.42',
      });
    }
    report.memory = await memoryPerSession(redis.url, memPrefix);
    await store.close();
  }

  report.machine = { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
  report.settings = { quick, only, durationMs: DURATION, runs: RUNS, concurrency: C };
  report.date = new Date().toISOString();

  const table = renderTable(report);
  process.stdout.write(`${table}\n`);
  const full = !quick && only === null;
  const file = full ? join('bench', 'results', `${report.date}.json`.replace(/:/g, '-')) : join(await mkdtemp(join(tmpdir(), 'lk-bench-')), 'partial.json');
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  if (full) {
    await writeFile(join('bench', 'refresh-throughput.svg'), refreshChart(sweep));
    const doc = await readFile('BENCHMARKS.md', 'utf8').catch(() => '');
    const marker = /<!-- results -->[\s\S]*<!-- \/results -->/;
    const block = `<!-- results -->\n${table}\n\nMachine: ${JSON.stringify(report.machine)}; ${report.date}.\n<!-- /results -->`;
    await writeFile('BENCHMARKS.md', marker.test(doc) ? doc.replace(marker, block) : `${doc}\n${block}\n`);
  }
}


function renderTable(r: Record<string, unknown>): string {
  const rows: string[][] = [['figure', 'latchkey', 'baseline (same run)', 'ratio', 'target']];
  const n = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const f = (x: Figure) => `${n(x.median)} (${n(x.min)}–${n(x.max)})`;
  const sweep = (r.refresh ?? []) as Array<{ concurrency: number; rps: Figure; p99: Figure; ceiling: Figure; ratio: Figure }>;
  for (const s of sweep) {
    rows.push([`refresh req/s, c=${s.concurrency}`, f(s.rps), `RS256 signs/s ${f(s.ceiling)}`, n(s.ratio.median), '(published)']);
    rows.push([`refresh p99 ms, c=${s.concurrency}`, f(s.p99), '', '', s.concurrency === 32 ? '≤ 10 ms' : '']);
  }
  const peer = r.peer as
    | { oidcProvider?: Figure; latchkey?: Figure; ratio?: Figure; error?: string; cpuMicrosPerRefresh?: Figure | null; eventLoopMicrosPerRefresh?: Figure | null; oidcProviderCpuMicrosPerRefresh?: Figure | null; rs256SignMicros?: Figure }
    | undefined;
  if (!peer) {
    // not measured in this run
  } else if (peer.oidcProvider && peer.latchkey && peer.ratio) {
    rows.push([`refresh req/s vs oidc-provider, c=${C}`, f(peer.latchkey), `oidc-provider ${f(peer.oidcProvider)}`, n(peer.ratio.median), '≥ 2']);
    if (peer.cpuMicrosPerRefresh && peer.rs256SignMicros) {
      const gap = peer.cpuMicrosPerRefresh.median - peer.rs256SignMicros.median;
      rows.push([`refresh latchkey CPU µs per request, c=${C}`, f(peer.cpuMicrosPerRefresh), `one RS256 signature ${f(peer.rs256SignMicros)}`, '', `floor + ${n(gap)} µs`]);
      const loop = peer.eventLoopMicrosPerRefresh;
      if (loop) rows.push([`refresh latchkey event-loop CPU µs per request, c=${C}`, f(loop), `other threads ${n(peer.cpuMicrosPerRefresh.median - loop.median)}`, '', '(signature on the pool)']);
      const o = peer.oidcProviderCpuMicrosPerRefresh;
      if (o) rows.push([`refresh server CPU µs per request, c=${C}`, f(peer.cpuMicrosPerRefresh), `oidc-provider ${f(o)}`, n(o.median / peer.cpuMicrosPerRefresh.median), '(peer ÷ latchkey)']);
    }
  } else rows.push(['refresh vs oidc-provider', 'n/a', `peer failed: ${peer.error}`, '', '≥ 2']);
  const login = r.login as { rps: Figure; argon2: Figure; ratio: Figure; jwksP99Idle: number; jwksP99UnderLogin: number; refreshP99UnderLogin: number } | undefined;
  if (login) rows.push(['login req/s', f(login.rps), `argon2id verify/s ${f(login.argon2)}`, n(login.ratio.median), '≥ 0.9']);
  if (login) rows.push(['JWKS p99 ms under login load', n(login.jwksP99UnderLogin), `idle ${n(login.jwksP99Idle)}`, n(login.jwksP99UnderLogin / login.jwksP99Idle), '(responsive)']);
  if (login) rows.push(['refresh p99 ms under login load', n(login.refreshP99UnderLogin), '', '', '(responsive)']);
  const jwks = r.jwks as { latchkey: Figure; bare: Figure; ratio: Figure; cpuMicrosPerRequest: { latchkey: Figure; bare: Figure } | null } | undefined;
  if (jwks) rows.push(['JWKS req/s', f(jwks.latchkey), `bare Fastify ${f(jwks.bare)}`, n(jwks.ratio.median), '≥ 0.9']);
  const cpu = jwks?.cpuMicrosPerRequest;
  if (cpu) rows.push(['JWKS server CPU µs per request', f(cpu.latchkey), `bare Fastify ${f(cpu.bare)}`, n(cpu.bare.median / cpu.latchkey.median), '(bare ÷ latchkey)']);
  const fa = r.forwardAuth as { tokens: number; latchkey: Figure; bare: Figure; ratio: Figure; p99: { latchkey: Figure; bare: Figure }; cpuMicrosPerRequest: { latchkey: Figure; bare: Figure } | null } | undefined;
  if (fa) rows.push([`GET /verify req/s, ${fa.tokens} hot tokens, c=${C}`, f(fa.latchkey), `bare Fastify ${f(fa.bare)}`, n(fa.ratio.median), '≥ 0.7']);
  if (fa) rows.push([`GET /verify p99 ms, c=${C}`, f(fa.p99.latchkey), `bare Fastify ${f(fa.p99.bare)}`, n(fa.p99.latchkey.median / fa.p99.bare.median), '(published)']);
  if (fa?.cpuMicrosPerRequest) {
    const c = fa.cpuMicrosPerRequest;
    rows.push(['GET /verify server CPU µs per request', f(c.latchkey), `bare Fastify ${f(c.bare)}`, n(c.bare.median / c.latchkey.median), '(bare ÷ latchkey)']);
  }
  const e = r.endpoints as Record<'tokenEndpoint' | 'adminVerify' | 'adminRefresh', { a: Figure; b: Figure; ratio: Figure; cpu: { a: Figure; b: Figure } | null }> | undefined;
  if (e) {
    const cpuNote = (x: { cpu: { a: Figure; b: Figure } | null }) => (x.cpu ? `CPU µs/req ${n(x.cpu.a.median)} vs ${n(x.cpu.b.median)}` : '(not slower)');
    rows.push([`refresh req/s via POST /token, c=${C}`, f(e.tokenEndpoint.a), `POST /refresh ${f(e.tokenEndpoint.b)}`, n(e.tokenEndpoint.ratio.median), cpuNote(e.tokenEndpoint)]);
    rows.push([`GET /verify req/s, admin API on, c=${C}`, f(e.adminVerify.a), `admin API off ${f(e.adminVerify.b)}`, n(e.adminVerify.ratio.median), cpuNote(e.adminVerify)]);
    rows.push([`refresh req/s, admin API on, c=${C}`, f(e.adminRefresh.a), `admin API off ${f(e.adminRefresh.b)}`, n(e.adminRefresh.ratio.median), cpuNote(e.adminRefresh)]);
  }
  const v = r.verify as Record<string, Figure> | undefined;
  if (v) {
    rows.push(['verify/s, hot token (latchkey/verifier)', f(v.verifierHot!), `jose jwtVerify ${f(v.joseJwtVerify!)}`, n(v.verifierHot!.median / v.joseJwtVerify!.median), '(published)']);
    rows.push(['verify/CPU-s, distinct tokens (latchkey/verifier)', f(v.verifierDistinct!), `node:crypto RS256 verify ${f(v.rawCryptoVerify!)}`, n(v.distinctRatio!.median), '≥ 0.7']);
    if (v.verifierDistinctRedis && v.verifierDistinctNoRedisConcurrent) {
      const lookup = 1e6 / v.verifierDistinctRedis.median - 1e6 / v.verifierDistinctNoRedisConcurrent.median;
      rows.push([`verify/s, distinct tokens with Redis, c=${C}`, f(v.verifierDistinctRedis), `without Redis ${f(v.verifierDistinctNoRedisConcurrent)}`, '', `lookup ≈ ${n(lookup)} µs`]);
    }
    const fl = r.verifierFlood as Record<string, number>;
    rows.push([`verifier RSS MiB after ${fl.forged} forged tokens`, n(fl.rssAfterForgedMiB!), `before ${n(fl.rssBeforeMiB!)}`, '', 'bounded']);
    rows.push([`verifier RSS MiB after ${fl.genuine} genuine tokens (cache 10 000)`, n(fl.rssAfterGenuineMiB!), '', '', 'bounded']);
    const tc = r.tokenCache as Record<string, number>;
    rows.push(['verifier cache hit ns (TokenCache)', n(tc.tokenCacheNs!), `lru-cache ${tc.lruCacheNs ? n(tc.lruCacheNs) : 'n/a'}, Map ${n(tc.mapNs!)}`, '', '(published)']);
  }
  const s = r.scaling as { oneProcess: Figure; twoProcesses: Figure; ratio: Figure } | undefined;
  if (s) rows.push([`refresh req/s, 2 processes, c=${C}`, f(s.twoProcesses), `1 process ${f(s.oneProcess)}`, n(s.ratio.median), '(published)']);
  const m = r.memory as { sessionBytes: number; withUserBytes: number; sessions: number } | undefined;
  if (m) {
    rows.push(['Redis bytes per session', n(m.sessionBytes), `with user record ${n(m.withUserBytes)}`, '', '≤ 500']);
    rows.push(['Redis for 1M sessions (extrapolated)', `${n((m.sessionBytes * 1e6) / 2 ** 20)} MiB`, '', '', '']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM');
    // The private redis-server is killed by its handle's exit hook.
    setTimeout(() => process.exit(), 500).unref();
  });
