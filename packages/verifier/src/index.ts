import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { applyGlobal, decodeFact, isActiveArgs, isActiveLua, keyNames, parseGlobal, revokedGlobally, type GlobalRevocation } from './protocol.js';

/**
 * latchkey's verifier for resource servers: signature and claims checked offline against the JWKS, and —
 * given a Redis connection — revocation honoured within about a second, without a Redis call per request.
 *
 * How revocation is known:
 * - The first time the verifier sees a token it asks Redis once whether the token is still good (not
 *   deny-listed, session live, user enabled). The answer is cached until the token expires.
 * - Revocations after that arrive as facts on latchkey's revocation stream, followed with a blocking read:
 *   a revoked session or jti is refused by every verifier as soon as the fact lands.
 * - After a reconnect the verifier resumes the stream where it stopped; if the stream no longer reaches
 *   back that far, or the store's epoch marker vanished or changed (Redis lost its data), every cached
 *   answer is dropped and tokens are asked about again — sessions that were lost read as revoked.
 * - While it cannot know (Redis down and the last successful read older than `maxStalenessMs`), it follows
 *   `revocation.policy`: `failClosed` (default) refuses with `unavailable`; `failOpen` accepts tokens whose
 *   signature holds for at most `maxSeconds` after the last successful read, and logs loudly.
 */

/** Claims of a latchkey access token. */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  iat: number;
  exp: number;
  jti: string;
  sid: string;
  roles?: string[];
  /** The client the session was started for (RFC 9068 §2.2). */
  client_id?: string;
}

export type VerifyErrorCode = 'expired' | 'revoked' | 'invalid' | 'unavailable';

/** Why a token was refused. `unavailable` means revocation state could not be known (see the policy). */
export class VerifyError extends Error {
  constructor(
    readonly code: VerifyErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VerifyError';
  }
}

export type Decision = 'accepted' | VerifyErrorCode;

/** The subset of an ioredis client the verifier uses. Pass a client without a `keyPrefix`. */
export interface RedisClientLike {
  call(command: string, ...args: Array<string | number>): Promise<unknown>;
  /** ioredis: `duplicate(options)` on a Redis client, `duplicate(startupNodes, options)` on a Cluster. */
  duplicate(first?: unknown, second?: unknown): RedisClientLike;
  /** Set by ioredis on Cluster clients. */
  isCluster?: boolean;
  disconnect(): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
  options?: { keyPrefix?: string };
}

export interface VerifierLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface VerifierOptions {
  issuer: string;
  audience: string | string[];
  /** Where latchkey publishes its keys, e.g. https://auth.example.com/.well-known/jwks.json */
  jwksUrl?: string | URL;
  /** Instead of `jwksUrl`: a key resolver of your own (jose's `JWTVerifyGetKey`). */
  getKey?: JWTVerifyGetKey;
  /** An ioredis client for revocation. Without it only signatures and claims are checked. */
  redis?: RedisClientLike;
  /** latchkey's REDIS_KEY_PREFIX. Default `lk:`. */
  keyPrefix?: string;
  /** Leeway for `exp` and `iat`, seconds. Default 5, at most 30. */
  clockToleranceSeconds?: number;
  /**
   * The longest `exp - iat` accepted, seconds: set it to latchkey's LATCHKEY_ACCESS_TOKEN_TTL. Default 86 400,
   * the most latchkey allows.
   */
  maxLifetimeSeconds?: number;
  /** Behaviour while revocation state cannot be known. Default `{ policy: 'failClosed' }`. */
  revocation?: { policy: 'failClosed' } | { policy: 'failOpen'; maxSeconds: number };
  /** How old the last successful read of the revocation stream may be before state counts as unknown. Default 3000. */
  maxStalenessMs?: number;
  /** Longest wait for the first-sight Redis lookup before the policy applies. Default 1000. */
  lookupTimeoutMs?: number;
  /** How many tokens to remember. Default 10 000. */
  cacheSize?: number;
  /** Called for every decision (metrics). */
  onDecision?: (decision: Decision) => void;
  logger?: VerifierLogger;
  /** Clock, epoch ms. For tests. */
  now?: () => number;
}

export interface VerifierStats {
  accepted: number;
  expired: number;
  revoked: number;
  invalid: number;
  unavailable: number;
  /** Redis round trips made on the verification path (first sight of a token). */
  redisLookups: number;
}

export interface Verifier {
  /** Returns the claims, or throws a `VerifyError`. */
  verify(token: string): Promise<AccessTokenClaims>;
  /** Resolves once the revocation stream is being followed (immediately without Redis). */
  ready(): Promise<void>;
  stats(): Readonly<VerifierStats>;
  close(): Promise<void>;
}

interface Known {
  claims: AccessTokenClaims;
  /** Set when the store said no at first sight. */
  revoked: boolean;
}

const BLOCK_MS = 1000;
const silent: VerifierLogger = { warn: () => undefined, error: () => undefined };

/**
 * Exactly three unpadded base64url segments (RFC 7515 §2, §7.1), and no byte order mark before the
 * header's or the payload's JSON (RFC 8259 §8.1): jose's decoders let padding and a BOM through.
 */
function wellFormed(token: string): boolean {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return false;
  const [header, payload] = token.split('.') as [string, string];
  return !startsWithBom(header) && !startsWithBom(payload);
}

/** The first four base64url characters are exactly the first three bytes. */
const startsWithBom = (segment: string) => Buffer.from(segment.slice(0, 4), 'base64url').equals(Buffer.from([0xef, 0xbb, 0xbf]));

/**
 * jose takes any JSON number for `iat` and `exp`: Infinity (1e309), fractions, an `iat` after `exp` or in
 * the future. latchkey signs whole seconds (RFC 7519 §2 NumericDate) for a bounded lifetime.
 */
function plausibleTimes(payload: JWTPayload, nowMs: number, toleranceSeconds: number, maxLifetimeSeconds: number): boolean {
  const { iat, exp } = payload;
  return (
    Number.isSafeInteger(iat) &&
    Number.isSafeInteger(exp) &&
    iat! <= nowMs / 1000 + toleranceSeconds &&
    iat! < exp! &&
    exp! - iat! <= maxLifetimeSeconds
  );
}

export function createVerifier(options: VerifierOptions): Verifier {
  const now = options.now ?? Date.now;
  const tolerance = Math.min(options.clockToleranceSeconds ?? 5, 30);
  const maxLifetime = options.maxLifetimeSeconds ?? 86_400;
  const prefix = options.keyPrefix ?? 'lk:';
  const maxStaleness = options.maxStalenessMs ?? 3000;
  const cacheSize = options.cacheSize ?? 10_000;
  const policy = options.revocation ?? { policy: 'failClosed' as const };
  const log = options.logger ?? silent;
  const redis = options.redis;
  if (redis?.options?.keyPrefix) throw new Error('pass a Redis client without keyPrefix; set the verifier keyPrefix option instead');
  // jose's remote key set refetches on an unknown kid, single-flight, at most once per cooldown (30 s).
  const getKey = options.getKey ?? (options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : undefined);
  if (!getKey) throw new Error('createVerifier needs jwksUrl or getKey');

  const stats: VerifierStats = { accepted: 0, expired: 0, revoked: 0, invalid: 0, unavailable: 0, redisLookups: 0 };
  const known = new Map<string, Known>();
  const revokedSids = new Map<string, number>();
  const deniedJtis = new Map<string, number>();
  let lastSync = 0;
  let lastOpenWarning = 0;
  let closed = false;

  const decide = (d: Decision) => {
    stats[d === 'accepted' ? 'accepted' : d]++;
    options.onDecision?.(d);
  };
  const fail = (code: VerifyErrorCode, message: string): never => {
    decide(code);
    throw new VerifyError(code, message);
  };

  function remember(token: string, entry: Known): void {
    if (known.size >= cacheSize) {
      // Evict the oldest; a forgotten token is simply checked again at its next sight.
      const oldest = known.keys().next().value;
      if (oldest !== undefined) known.delete(oldest);
    }
    known.set(token, entry);
  }

  function fresh(): boolean {
    return now() - lastSync <= maxStaleness;
  }

  /** The policy when revocation state is unknown: refuse, or accept for a bounded time and say so. */
  function whenUnknown(claims: AccessTokenClaims): AccessTokenClaims {
    if (policy.policy === 'failOpen' && now() - lastSync <= policy.maxSeconds * 1000) {
      if (now() - lastOpenWarning > 1000) {
        lastOpenWarning = now();
        log.warn({ lastSync: new Date(lastSync).toISOString() }, 'revocation state unknown: FAILING OPEN, accepting tokens on signature alone');
      }
      decide('accepted');
      return claims;
    }
    return fail('unavailable', 'revocation state is unknown');
  }

  /**
   * The first-sight lookup as EVAL_RO (Redis 7), which a read-only ACL user may run; EVAL on a server
   * that does not know EVAL_RO.
   */
  let evalCommand = 'EVAL_RO';
  async function evalReadOnly(args: Array<string | number>): Promise<unknown> {
    try {
      return await redis!.call(evalCommand, isActiveLua, 3, ...args);
    } catch (err) {
      if (evalCommand === 'EVAL_RO' && /unknown command/i.test((err as Error).message)) {
        evalCommand = 'EVAL';
        return redis!.call(evalCommand, isActiveLua.replace(/^#!.*\n/, ''), 3, ...args);
      }
      throw err;
    }
  }

  async function firstSight(claims: AccessTokenClaims): Promise<boolean> {
    stats.redisLookups++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('revocation lookup timed out')), options.lookupTimeoutMs ?? 1000);
    });
    const lookup = evalReadOnly(isActiveArgs(prefix, claims, now()));
    try {
      return (await Promise.race([lookup, timeout])) === 1;
    } finally {
      clearTimeout(timer);
      lookup.catch(() => undefined);
    }
  }

  async function verify(token: string): Promise<AccessTokenClaims> {
    const t = now();
    let entry = known.get(token);
    if (!entry) {
      try {
        if (!wellFormed(token)) return fail('invalid', 'not a JWS compact serialisation latchkey signs');
        const { payload } = await jwtVerify(token, getKey!, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms: ['RS256'],
          typ: 'at+jwt',
          clockTolerance: tolerance,
          currentDate: new Date(t),
          requiredClaims: ['sub', 'iat', 'exp', 'jti', 'sid'],
        });
        if (typeof payload.sid !== 'string' || typeof payload.jti !== 'string') return fail('invalid', 'malformed claims');
        if (!plausibleTimes(payload, t, tolerance, maxLifetime)) return fail('invalid', 'implausible iat or exp');
        entry = { claims: payload as AccessTokenClaims, revoked: false };
      } catch (err) {
        if (err instanceof VerifyError) throw err;
        return fail(err instanceof errors.JWTExpired ? 'expired' : 'invalid', (err as Error).message);
      }
    } else if (entry.claims.exp + tolerance <= t / 1000) {
      known.delete(token);
      return fail('expired', 'token expired');
    }
    const claims = entry.claims;
    if (!redis) {
      remember(token, entry);
      decide('accepted');
      return claims;
    }
    if (entry.revoked || revokedSids.has(claims.sid) || deniedJtis.has(claims.jti) || revokedGlobally(global, claims)) {
      return fail('revoked', 'token revoked');
    }
    if (!fresh()) return whenUnknown(claims);
    if (!known.has(token)) {
      let active: boolean;
      try {
        active = await firstSight(claims);
      } catch (err) {
        log.error({ reason: (err as Error).message }, 'revocation lookup failed');
        return whenUnknown(claims);
      }
      remember(token, { claims, revoked: !active });
      if (!active) return fail('revoked', 'token revoked');
    }
    decide('accepted');
    return claims;
  }

  // ---- following the revocation stream -------------------------------------------------------------

  let reader: RedisClientLike | null = null;
  let lastId = '$';
  /** The store's epoch marker as last read; undefined before the first read. */
  let epoch: string | null | undefined;
  /** The incident switch: read at every (re)sync, then kept current by `global` facts on the stream. */
  let global: GlobalRevocation = { all: 0, roles: {} };
  let markReady: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  const idAfter = (a: string, b: string) => {
    const [am, as] = a.split('-').map(Number) as [number, number];
    const [bm, bs] = b.split('-').map(Number) as [number, number];
    return am > bm || (am === bm && as > bs);
  };

  function forgetAnswers(why: string): void {
    if (known.size > 0) log.warn({ why, dropped: known.size }, 'revocation cache reset');
    known.clear();
  }

  function prune(t: number): void {
    for (const [sid, exp] of revokedSids) if (exp <= t) revokedSids.delete(sid);
    for (const [jti, exp] of deniedJtis) if (exp <= t) deniedJtis.delete(jti);
  }

  /**
   * Compares the store's epoch marker with the one seen before. latchkey keeps the marker present; the
   * verifier only reads it, so it works with a read-only Redis user.
   */
  async function checkEpoch(client: RedisClientLike): Promise<void> {
    const current = (await client.call('GET', prefix + keyNames.epoch)) as string | null;
    // A missing marker means the data is gone and latchkey has not marked the new epoch yet: nothing
    // cached can be trusted while it stays missing (a second loss in that time would look the same).
    if (current === null) forgetAnswers('the store lost its data (no epoch marker)');
    else if (epoch !== undefined && current !== epoch) forgetAnswers('the store lost its data (epoch changed)');
    epoch = current;
  }

  /** After a break: resume if the stream still reaches back to where we stopped, else start over. */
  async function resync(client: RedisClientLike): Promise<void> {
    await checkEpoch(client);
    global = parseGlobal(await client.call('HGETALL', prefix + keyNames.global));
    if (lastId === '$') {
      const last = (await client.call('XREVRANGE', prefix + keyNames.revocations, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      lastId = last[0]?.[0] ?? '0-0';
      return;
    }
    const first = (await client.call('XRANGE', prefix + keyNames.revocations, '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
    const firstId = first[0]?.[0];
    if (!firstId || idAfter(firstId, lastId)) {
      if (lastId !== '0-0') forgetAnswers('revocation events may have been missed');
      lastId = '0-0';
    }
  }

  async function follow(): Promise<void> {
    let needResync = true;
    let backoff = 100;
    while (!closed) {
      try {
        if (!reader) {
          // The stream reader blocks its connection, so it gets its own; it may queue while connecting.
          reader = redis!.isCluster ? redis!.duplicate([], { enableOfflineQueue: true }) : redis!.duplicate({ enableOfflineQueue: true });
          reader.on('error', () => undefined);
        }
        if (needResync) {
          await resync(reader);
          needResync = false;
          lastSync = now();
          markReady();
        }
        const reply = (await reader.call('XREAD', 'COUNT', 1000, 'BLOCK', BLOCK_MS, 'STREAMS', prefix + keyNames.revocations, lastId)) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            lastId = id;
            const fact = decodeFact(fields);
            // A fact's exp allows for latchkey's clock skew; this verifier accepts tokens for its own
            // tolerance past exp, which may be longer, and its cache still says "accepted" all that time.
            const until = (fact?.exp ?? 0) + tolerance * 1000;
            if (fact?.type === 'sid') revokedSids.set(fact.sid, until);
            if (fact?.type === 'global') global = applyGlobal(global, fact);
            if (fact?.type === 'jti') deniedJtis.set(fact.jti, until);
          }
        }
        await checkEpoch(reader);
        lastSync = now();
        prune(lastSync);
        backoff = 100;
      } catch (err) {
        if (closed) break;
        log.error({ reason: (err as Error).message }, 'revocation stream unreachable; retrying');
        needResync = true;
        reader?.disconnect();
        reader = null;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  const following = redis ? follow() : Promise.resolve();
  if (!redis) markReady();

  return {
    verify,
    ready: () => readyPromise,
    stats: () => ({ ...stats }),
    async close() {
      closed = true;
      reader?.disconnect();
      await following;
    },
  };
}
