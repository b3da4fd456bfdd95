import { createHash, randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { ReplicationPendingError, StoreUnavailableError } from '../errors.js';
import { traced } from '../tracing.js';
import { connectRedis, type RedisConnectionOptions } from './redis-connection.js';
import {
  encodeFact,
  isActiveArgs,
  isActiveLua,
  keyNames,
  parseGlobal,
  revokedGlobally,
  type GlobalRevocation,
  type RevocationFact,
} from '@latchkey/verifier/protocol';
import {
  consumeResetLua,
  createSessionLua,
  listSessionsLua,
  revokeAllLua,
  revokeByTokenLua,
  revokeEveryoneLua,
  revokeSessionLua,
  rotateLua,
} from './redis-scripts.js';
import type {
  AdminKeyRecord,
  AuditEntry,
  AuditQuery,
  AuditRetention,
  Channel,
  CreateSessionResult,
  IssuedState,
  NewSession,
  PresentedToken,
  RateLimiterOptions,
  RotateRequest,
  RotateResult,
  SessionRecord,
  StoredAuditEntry,
  Store,
  StoreCommand,
  UserRecord,
} from './store.js';

type Reply = Array<string | number | null>;
type ScriptFn = (...args: Array<string | Buffer | number>) => Promise<unknown>;

const scripts = {
  lkCreateSession: { numberOfKeys: 4, lua: createSessionLua },
  lkRotate: { numberOfKeys: 4, lua: rotateLua },
  lkRevokeByToken: { numberOfKeys: 2, lua: revokeByTokenLua },
  lkRevokeSession: { numberOfKeys: 2, lua: revokeSessionLua },
  lkRevokeAll: { numberOfKeys: 3, lua: revokeAllLua },
  lkListSessions: { numberOfKeys: 1, lua: listSessionsLua },
  lkIsActive: { numberOfKeys: 3, lua: isActiveLua },
  lkRevokeEveryone: { numberOfKeys: 1, lua: revokeEveryoneLua },
  lkConsumeReset: { numberOfKeys: 1, lua: consumeResetLua },
} as const;

type ScriptName = keyof typeof scripts;

const k = {
  ...keyNames,
  // The e-mail index is keyed by a hash so addresses do not show up in key names (MONITOR, SLOWLOG).
  email: (email: string) => `e:${createHash('sha256').update(email).digest('base64url')}`,
  // Latchkey only (see the key layout in redis-scripts.ts): none of these is readable by verifiers.
  reset: (uid: string) => `{${uid}}:pr`,
  users: 'users',
  adminKeys: 'ak',
  audit: 'audit',
  auditSecret: 'hk',
};

export type RedisStoreOptions = RedisConnectionOptions & {
  logger: Logger;
  /** Replicas that must hold a revocation before it is confirmed (0: do not wait). Not with Cluster. */
  replicasToAck?: number;
  replicaAckTimeoutMs?: number;
  /** How long revocation facts stay on the stream: the longest a token issued now can be accepted, plus margin. */
  revocationRetentionMs?: number;
};

/** How often latchkey re-asserts the epoch marker verifiers use to notice that Redis lost its data. */
const EPOCH_EVERY_MS = 5000;

export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly client: Redis | Cluster;
  /** Prepended to every key (REDIS_KEY_PREFIX). */
  readonly keyPrefix: string;
  private readonly log: Logger;
  /**
   * A connection of its own for WAIT, which blocks the connection it runs on: waiting for replicas must
   * not hold up every other request's commands.
   */
  private readonly acks: { client: Redis; replicas: number; timeoutMs: number } | null;
  private readonly retentionMs: number;
  private readonly epochTimer: NodeJS.Timeout;

  constructor(options: RedisStoreOptions) {
    this.log = options.logger;
    this.keyPrefix = options.keyPrefix;
    this.client = connectRedis(options);
    for (const [name, def] of Object.entries(scripts)) this.client.defineCommand(name, def);
    this.client.on('error', (err: Error) => this.log.warn({ err: { message: err.message } }, 'redis connection error'));
    const replicas = options.replicasToAck ?? 0;
    if (replicas > 0 && 'cluster' in options) throw new Error('waiting for replicas is not supported with Redis Cluster');
    const acks = replicas > 0 ? connectRedis(options) : null;
    acks?.on('error', () => undefined); // reported through the main client
    this.acks = acks ? { client: acks as Redis, replicas, timeoutMs: options.replicaAckTimeoutMs ?? 500 } : null;
    this.retentionMs = options.revocationRetentionMs ?? 24 * 3600_000;
    // Verifiers compare the epoch marker to notice a Redis that lost its data, and may only read it (a
    // read-only ACL user): latchkey keeps it present, at every (re)connection and every few seconds.
    this.client.on('ready', () => void this.ensureEpoch());
    this.epochTimer = setInterval(() => void this.ensureEpoch(), EPOCH_EVERY_MS);
    this.epochTimer.unref();
  }

  private async ensureEpoch(): Promise<void> {
    if (this.client.status !== 'ready') return;
    await this.client.set(k.epoch, randomBytes(12).toString('base64url'), 'NX').catch(() => undefined);
  }

  /**
   * Connects, waiting at most `timeoutMs`. A Redis that is down at start-up is not fatal: the client keeps
   * reconnecting, /readyz says 503 meanwhile, and requests get 503 until it answers.
   */
  async connect(timeoutMs = 5000): Promise<boolean> {
    const ready = new Promise<void>((resolve, reject) => {
      Promise.all([this.client.connect(), this.acks?.client.connect()]).then(() => resolve(), reject);
      setTimeout(() => reject(new Error('timed out')), timeoutMs).unref();
    });
    try {
      await ready;
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'redis not reachable yet; retrying in the background');
      return false;
    }
    await this.checkEvictionPolicy();
    return true;
  }

  /** Evicted auth keys would silently un-revoke sessions and log users out: warn unless noeviction. */
  private async checkEvictionPolicy(): Promise<void> {
    try {
      const reply = (await this.client.config('GET', 'maxmemory-policy')) as string[];
      const policy = reply[1];
      if (policy !== 'noeviction') {
        this.log.warn({ policy }, 'redis maxmemory-policy is not noeviction: auth keys may be evicted under memory pressure');
      }
    } catch {
      this.log.warn('could not read redis maxmemory-policy (CONFIG disabled?); make sure it is noeviction');
    }
  }

  private observer: ((command: StoreCommand) => void) | undefined;

  observe(listener: (command: StoreCommand) => void): void {
    this.observer = listener;
  }

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await traced(`store ${what}`, fn, { 'db.system.name': 'redis' });
      this.observer?.({ command: what, seconds: (performance.now() - started) / 1000, failure: null });
      return result;
    } catch (err) {
      // ioredis rejects with "Command timed out" once commandTimeout passes.
      const failure = /timed out/i.test((err as Error).message) ? 'timeout' : 'error';
      this.observer?.({ command: what, seconds: (performance.now() - started) / 1000, failure });
      throw new StoreUnavailableError(`redis ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  private script(name: ScriptName, ...args: Array<string | Buffer | number>): Promise<unknown> {
    const fn = (this.client as unknown as Record<ScriptName, ScriptFn>)[name];
    return this.run(name, () => fn.apply(this.client, args));
  }

  async createUser(user: UserRecord): Promise<'created' | 'conflict'> {
    // The user's keys first (unreachable until the e-mail points at them), then claim the e-mail atomically.
    // Two keys in two slots cannot be one script; if the claim loses, the orphans are removed.
    await this.run('createUser', () =>
      this.client
        .multi()
        .hset(k.user(user.id), serializeUser(user))
        .hset(k.state(user.id), serializeState(user))
        .exec()
        .then(execResult),
    );
    const claimed = await this.run('createUser', () => this.client.set(k.email(user.email), user.id, 'NX'));
    if (claimed === 'OK') {
      await this.run('createUser', () => this.client.zadd(k.users, user.createdAt, user.id));
      return 'created';
    }
    await this.run('createUser', () => this.client.del(k.user(user.id), k.state(user.id)));
    return 'conflict';
  }

  async findUserByEmail(email: string): Promise<UserRecord | null> {
    const id = await this.run('findUserByEmail', () => this.client.get(k.email(email)));
    return id ? this.getUser(id) : null;
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const [h, x] = await this.run('getUser', () =>
      this.client
        .multi()
        .hgetall(k.user(userId))
        .hgetall(k.state(userId))
        .exec()
        .then((r) => execResult(r) as [Record<string, string>, Record<string, string>]),
    );
    return h.id ? parseUser(h, x) : null;
  }

  async setPasswordHash(userId: string, passwordHash: string): Promise<void> {
    await this.run('setPasswordHash', () => this.client.hset(k.user(userId), 'pw', passwordHash));
  }

  async setRoles(userId: string, roles: string[]): Promise<void> {
    await this.run('setRoles', () => this.client.hset(k.user(userId), 'roles', JSON.stringify(roles)));
  }

  async setDisabled(userId: string, disabled: boolean, now: number): Promise<string[]> {
    if (disabled) return (await this.script('lkRevokeAll', k.user(userId), k.index(userId), k.state(userId), now, '1')) as string[];
    // Only an existing account: enabling must not create a state hash for an id that has no user.
    await this.run('setDisabled', async () => {
      if (await this.client.exists(k.user(userId))) await this.client.hset(k.state(userId), 'dis', '0');
    });
    return [];
  }

  async createSession(s: NewSession): Promise<CreateSessionResult> {
    const r = (await this.script(
      'lkCreateSession',
      k.user(s.userId),
      k.state(s.userId),
      k.index(s.userId),
      k.session(s.userId, s.sessionId),
      s.sessionId,
      s.secretHash,
      s.macKey,
      channelCode(s.channel),
      s.now,
      s.refreshTtlMs,
      s.absoluteTtlMs,
      s.ip ?? '',
      s.userAgent ?? '',
      s.maxSessions,
      s.client ?? '',
    )) as Reply;
    if (r[0] !== 'created') return { status: 'user_unavailable' };
    return { status: 'created', ...issued(r, s.now), client: s.client ?? null, evicted: ((r[5] ?? []) as unknown as string[]).map(String) };
  }

  async rotate(q: RotateRequest): Promise<RotateResult> {
    const r = (await this.script(
      'lkRotate',
      k.user(q.userId),
      k.index(q.userId),
      k.session(q.userId, q.sessionId),
      k.state(q.userId),
      q.sessionId,
      q.secretHash,
      q.tag,
      channelCode(q.channel),
      q.successorHash,
      q.successorNonce,
      q.now,
      q.refreshTtlMs,
      q.graceMs,
      q.ip ?? '',
      q.userAgent ?? '',
      q.client === undefined ? '0' : '1',
      q.client ?? '',
    )) as Reply;
    switch (r[0]) {
      case 'rotated':
        return { status: 'rotated', ...issued(r, Number(r[7] ?? 0)) };
      case 'grace':
        return { status: 'grace', ...issued(r, Number(r[7] ?? 0)), successorNonce: String(r[5]), late: r[8] === 1 };
      case 'reused':
        return { status: 'reused' };
      default:
        return { status: 'invalid' };
    }
  }

  async revokeSessionByToken(t: PresentedToken): Promise<boolean> {
    const n = await this.script(
      'lkRevokeByToken',
      k.index(t.userId),
      k.session(t.userId, t.sessionId),
      t.sessionId,
      t.secretHash,
      t.tag,
    );
    return n === 1;
  }

  async revokeSession(userId: string, sessionId: string): Promise<boolean> {
    const n = await this.script(
      'lkRevokeSession',
      k.index(userId),
      k.session(userId, sessionId),
      sessionId,
    );
    return n === 1;
  }

  async revokeAllSessions(userId: string, now: number): Promise<string[]> {
    return (await this.script('lkRevokeAll', k.user(userId), k.index(userId), k.state(userId), now, '0')) as string[];
  }

  async listSessions(userId: string, now: number): Promise<SessionRecord[]> {
    const rows = (await this.script('lkListSessions', k.index(userId), now)) as string[][];
    return rows
      .map(([id, ct, lu, exp, abs, ip, ua, channel]) => ({
        id: String(id),
        userId,
        createdAt: Number(ct),
        lastUsedAt: Number(lu),
        expiresAt: Number(exp),
        absoluteExpiresAt: Number(abs),
        ip: ip || null,
        userAgent: ua || null,
        channel: channel === 'c' ? ('cookie' as const) : ('body' as const),
      }))
      .sort((a, b) => b.lastUsedAt - a.lastUsedAt);
  }

  async listUsers(cursor: string | undefined, limit: number): Promise<{ users: UserRecord[]; next: string | null }> {
    const from = cursor ? Math.max(0, Number(cursor) || 0) : 0;
    const ids = await this.run('listUsers', () => this.client.zrange(k.users, from, from + limit));
    const users: UserRecord[] = [];
    for (const id of ids.slice(0, limit)) {
      const user = await this.getUser(id);
      if (user) users.push(user);
    }
    return { users, next: ids.length > limit ? String(from + limit) : null };
  }

  async setResetToken(userId: string, secretHash: Buffer, expiresAt: number, now: number): Promise<void> {
    const ttl = expiresAt - now;
    if (ttl <= 0) return;
    await this.run('setResetToken', () =>
      this.client
        .multi()
        .del(k.reset(userId))
        .hset(k.reset(userId), 'h', secretHash, 'e', String(expiresAt), 'n', '0')
        .pexpire(k.reset(userId), ttl)
        .exec()
        .then(execResult),
    );
  }

  async consumeResetToken(userId: string, secretHash: Buffer, now: number, maxFailures: number): Promise<boolean> {
    return (await this.script('lkConsumeReset', k.reset(userId), secretHash, now, maxFailures)) === 1;
  }

  async deleteResetToken(userId: string): Promise<void> {
    await this.run('deleteResetToken', () => this.client.del(k.reset(userId)));
  }

  async putAdminKey(key: AdminKeyRecord): Promise<void> {
    await this.run('putAdminKey', () => this.client.hsetnx(k.adminKeys, key.id, JSON.stringify(key)));
  }

  async getAdminKey(id: string): Promise<AdminKeyRecord | null> {
    const raw = await this.run('getAdminKey', () => this.client.hget(k.adminKeys, id));
    return raw ? parseAdminKey(raw) : null;
  }

  async listAdminKeys(): Promise<AdminKeyRecord[]> {
    const all = await this.run('listAdminKeys', () => this.client.hgetall(k.adminKeys));
    return Object.values(all)
      .map(parseAdminKey)
      .filter((key): key is AdminKeyRecord => key !== null);
  }

  async deleteAdminKey(id: string): Promise<boolean> {
    return (await this.run('deleteAdminKey', () => this.client.hdel(k.adminKeys, id))) === 1;
  }

  /**
   * Appends to the audit stream and trims it by count and by age (exact trims: in steady state each
   * append drops about one entry). The stream expires after a quiet spell as long as its retention, so
   * nothing in it outlives that.
   */
  async appendAudit(entry: AuditEntry, retention: AuditRetention): Promise<string> {
    const fields = ['e', JSON.stringify(entry)];
    // Ids carry the entry's own time, so trimming by age means what it says; an instance whose clock is
    // behind the stream's newest id gets the next id Redis picks.
    const id = await this.run('appendAudit', () =>
      this.client
        .xadd(k.audit, 'MAXLEN', String(retention.maxEntries), `${Math.max(0, Math.floor(entry.time))}-*`, ...fields)
        .catch((err: Error) => {
          if (!/equal or smaller/.test(err.message)) throw err;
          return this.client.xadd(k.audit, 'MAXLEN', String(retention.maxEntries), '*', ...fields);
        }),
    );
    await this.run('appendAudit', () =>
      this.client
        .multi()
        .xtrim(k.audit, 'MINID', String(Math.max(0, entry.time - retention.maxAgeMs)))
        .pexpire(k.audit, retention.maxAgeMs)
        .exec()
        .then(execResult),
    );
    return String(id);
  }

  async readAudit(q: AuditQuery): Promise<{ entries: StoredAuditEntry[]; next: string | null }> {
    const entries: StoredAuditEntry[] = [];
    let end = q.before === undefined ? '+' : `(${q.before}`;
    let scanned = 0;
    let lastId: string | null = null;
    while (entries.length < q.limit && scanned < q.scanLimit) {
      const count = Math.min(500, q.scanLimit - scanned);
      const batch = await this.run('readAudit', () => this.client.xrevrange(k.audit, end, '-', 'COUNT', count));
      let consumed = 0;
      for (const [id, fields] of batch) {
        consumed++;
        scanned++;
        lastId = id;
        const e = parseAuditEntry(id, fields);
        if (e && (q.userId === undefined || e.userId === q.userId) && (q.type === undefined || e.type === q.type)) entries.push(e);
        if (entries.length >= q.limit) break;
      }
      // A short batch read to its end means the oldest entry has been examined.
      if (batch.length < count && consumed === batch.length) return { entries, next: null };
      end = `(${lastId}`;
    }
    return { entries, next: lastId };
  }

  async readAuditSince(after: string | undefined, limit: number): Promise<StoredAuditEntry[]> {
    const start = after === undefined ? '-' : `(${after}`;
    const batch = await this.run('readAuditSince', () => this.client.xrange(k.audit, start, '+', 'COUNT', limit));
    return batch.map(([id, fields]) => parseAuditEntry(id, fields)).filter((e): e is StoredAuditEntry => e !== null);
  }

  async auditSecret(): Promise<Buffer> {
    return this.run('auditSecret', async () => {
      await this.client.set(k.auditSecret, randomBytes(32), 'NX');
      const secret = await this.client.getBuffer(k.auditSecret);
      if (!secret) throw new Error('audit key vanished');
      return secret;
    });
  }

  async denyAccessToken(userId: string, jti: string, expiresAt: number, now: number): Promise<void> {
    const ttl = expiresAt - now;
    if (ttl <= 0) return;
    await this.run('denyAccessToken', () => this.client.set(k.deny(userId, jti), '1', 'PX', ttl));
  }

  /**
   * The user's revocation state and the incident switch live in different Cluster slots, so one script
   * cannot read both: the switch is read by a command of its own, sent together with the script (one
   * round trip on a single node) and never cached, so a switch pulled on any instance holds here at once.
   */
  async isAccessTokenActive(
    c: { userId: string; sessionId: string; jti: string; iat: number; roles?: readonly string[] },
    now: number,
  ): Promise<boolean> {
    const [state, index, deny, ...argv] = isActiveArgs('', { sub: c.userId, sid: c.sessionId, jti: c.jti }, now);
    const [r, global] = await Promise.all([this.script('lkIsActive', state!, index!, deny!, ...argv), this.globalRevocation()]);
    return r === 1 && !revokedGlobally(global, c);
  }

  async revokeEveryone(revokedAfter: number, role: string | null, retainMs: number): Promise<void> {
    await this.script('lkRevokeEveryone', k.global, role === null ? 'ra' : `ra:${role}`, revokedAfter, Math.max(1, Math.ceil(retainMs)));
  }

  async globalRevocation(): Promise<GlobalRevocation> {
    return parseGlobal(await this.run('globalRevocation', () => this.client.hgetall(k.global)));
  }

  /**
   * Appends revocation facts to the stream verifiers follow, trimming what no live token can need any
   * more. Called after the revocation itself: a fact is published only once it is true.
   */
  async publish(facts: RevocationFact[], now: number): Promise<void> {
    if (facts.length === 0) return;
    const retentionMs = this.retentionMs;
    const minId = String(Math.max(0, now - retentionMs));
    const pipeline = this.client.multi();
    for (const fact of facts) pipeline.xadd(k.revocations, 'MINID', '~', minId, '*', ...encodeFact(fact));
    // Trimmed by age as it grows, and gone altogether after a quiet spell: nothing in it outlives its use.
    pipeline.pexpire(k.revocations, retentionMs);
    const results = await this.run('publish', () => pipeline.exec());
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw new StoreUnavailableError(`redis publish failed: ${failed?.[0]?.message ?? 'aborted'}`);
  }

  /**
   * Confirms that every revocation made before this call is on `replicasToAck` replicas, so a failover
   * cannot bring it back (README "Security model": lost data must not revive a revoked token). Writes a marker on the
   * acks connection and WAITs for it: the master applied the revocation before the marker, replicas apply
   * the stream in order, so a replica holding the marker holds the revocation. Throws
   * StoreUnavailableError (503) when too few replicas answer in time; revoking again is harmless.
   */
  async confirmRevocations(): Promise<void> {
    if (!this.acks) return;
    const { client, replicas, timeoutMs } = this.acks;
    const acked = await this.run('confirmRevocations', async () => {
      await client.set('acks', String(Date.now()), 'PX', 60_000);
      return Number(await client.call('WAIT', String(replicas), String(timeoutMs)));
    });
    if (acked < replicas) {
      // Say why: a replica that lags, or a master that has fewer replicas than asked for (after a failover
      // to a node whose replicas are gone). Either way the revocation stands on the master.
      const info = await client.info('replication').catch(() => '');
      const match = /connected_slaves:(\d+)/.exec(info);
      const connected = match ? Number(match[1]) : null;
      throw new ReplicationPendingError(
        `revocation reached ${acked} of ${replicas} replicas within ${timeoutMs} ms (${connected ?? 'unknown'} connected)`,
        connected,
      );
    }
  }

  rateLimiter(o: RateLimiterOptions): RateLimiterAbstract {
    // The key is `<REDIS_KEY_PREFIX>rl:<name>:<key>` (ioredis adds the prefix). rejectIfRedisNotReady makes
    // a lost connection fail at once instead of waiting for the command timeout.
    return new RateLimiterRedis({
      storeClient: this.client,
      keyPrefix: `rl:${o.name}`,
      points: o.points,
      duration: o.durationSeconds,
      rejectIfRedisNotReady: true,
    });
  }

  /** Whether the connection is up right now (forward auth trusts its cached decisions only then). */
  connected(): boolean {
    return this.client.status === 'ready';
  }

  /**
   * A connection of its own for following the revocation stream, a blocking read: without the key prefix
   * (the follower names keys in full, @latchkey/verifier/protocol), with an offline queue so it may
   * connect lazily, and a command timeout above the read's block time, so a hung server is noticed.
   */
  streamConnection(blockMs = 1000): Redis | Cluster {
    const c = this.client;
    if ('isCluster' in c && c.isCluster) {
      const cluster = c as Cluster;
      return cluster.duplicate([], {
        keyPrefix: '',
        enableOfflineQueue: true,
        enableAutoPipelining: false,
        redisOptions: { ...cluster.options.redisOptions, commandTimeout: blockMs + 2000 },
      });
    }
    return (c as Redis).duplicate({ keyPrefix: '', enableOfflineQueue: true, enableAutoPipelining: false, commandTimeout: blockMs + 2000 });
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.client.ping());
  }

  async close(): Promise<void> {
    clearInterval(this.epochTimer);
    this.client.disconnect();
    this.acks?.client.disconnect();
  }
}

/** The channel as stored: one byte per session instead of a word. */
const channelCode = (c: Channel): string => (c === 'cookie' ? 'c' : 'b');

function issued(r: Reply, createdAt: number): IssuedState {
  return {
    tag: String(r[1]),
    expiresAt: Number(r[2]),
    absoluteExpiresAt: Number(r[3]),
    roles: parseRoles(r[4]),
    client: r[6] ? String(r[6]) : null,
    createdAt,
  };
}

function parseRoles(raw: unknown): string[] {
  try {
    const v: unknown = JSON.parse(String(raw ?? '[]'));
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

function serializeUser(u: UserRecord): Record<string, string> {
  return { id: u.id, email: u.email, pw: u.passwordHash, roles: JSON.stringify(u.roles), ct: String(u.createdAt) };
}

/** What verifiers may read of an account: disabled, and when every earlier session was revoked. */
function serializeState(u: UserRecord): Record<string, string> {
  return { dis: u.disabled ? '1' : '0', ra: String(u.revokedAfter) };
}

function parseUser(h: Record<string, string>, x: Record<string, string>): UserRecord {
  return {
    id: h.id ?? '',
    email: h.email ?? '',
    passwordHash: h.pw ?? '',
    roles: parseRoles(h.roles),
    disabled: x.dis !== '0',
    createdAt: Number(h.ct ?? 0),
    revokedAfter: Number(x.ra ?? 0),
    ...(h.ll ? { lastLoginAt: Number(h.ll) } : {}),
  };
}

function parseAdminKey(raw: string): AdminKeyRecord | null {
  try {
    const v = JSON.parse(raw) as AdminKeyRecord;
    return typeof v.id === 'string' && typeof v.secretHash === 'string' ? v : null;
  } catch {
    return null;
  }
}

function parseAuditEntry(id: string, fields: string[]): StoredAuditEntry | null {
  const at = fields.indexOf('e');
  if (at < 0 || at % 2 !== 0) return null;
  try {
    return { ...(JSON.parse(fields[at + 1] ?? '') as AuditEntry), id };
  } catch {
    return null;
  }
}

/** Results of a MULTI; any command's error fails the whole call (answered 503 by the caller). */
function execResult(results: Array<[Error | null, unknown]> | null): unknown[] {
  if (!results) throw new Error('transaction aborted');
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0]!;
  return results.map(([, value]) => value);
}
