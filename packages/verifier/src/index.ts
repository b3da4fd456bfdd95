import { createPublicKey, KeyObject, verify as rsaVerify, type JsonWebKey, type webcrypto } from 'node:crypto';
import { createRemoteJWKSet, type FlattenedJWSInput, type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { applyGlobal, decodeFact, isActiveArgs, isActiveLua, keyNames, parseGlobal, revokedGlobally, type GlobalRevocation, type RevocationFact } from './protocol.js';

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
  /** ioredis: `ready` while connected. */
  status?: string;
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
  /**
   * How many tokens to remember. Default 10 000. Memory stays bounded whatever arrives: only tokens whose
   * signature holds are remembered, each at most until it expires, and beyond this many the least recently
   * used goes first.
   */
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

/**
 * A bounded map from token to what was decided about it. Memory stays bounded under a flood of distinct
 * tokens: at most `capacity` entries, an entry is never returned after its `until` (the token's `exp` plus
 * tolerance), and when full, a token not used since it was last considered goes first.
 *
 * Recency is kept as in the CLOCK (second-chance) approximation of LRU: a hit only marks its entry as
 * used; eviction looks at entries oldest first, gives a used one a second chance at the young end and
 * removes the first unused or expired one. A hit thus costs one Map lookup, which matters on a path every
 * request of every resource server takes; exact LRU (`lru-cache`) moves the entry in a list on every hit
 * (bench/micro.ts `cache` measures both).
 *
 * The age order is a queue of its own beside the Map rather than the Map's insertion order: V8 leaves a
 * deleted Map entry in place until the table is rebuilt, and an iteration from the oldest end steps over
 * every one of them, so with a full cache each eviction walked past hundreds of them. The queue may hold
 * entries that are no longer in the Map (deleted, replaced or expired; `live` is false); they are skipped
 * when reached, and the queue is rebuilt once it holds more than twice the capacity.
 */
export class TokenCache<V> {
  private readonly entries = new Map<string, CacheEntry<V>>();
  /**
   * Entries oldest first from `head`; dead ones included until they are reached or the queue is rebuilt.
   * Slots before `head` are emptied as they are taken, so an evicted value is not kept alive by the queue.
   */
  private queue: Array<CacheEntry<V> | undefined> = [];
  private head = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new Error('cache capacity must be at least 1');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, unless absent or past its `until` (epoch ms). */
  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until <= now) {
      this.entries.delete(key);
      e.live = false;
      return undefined;
    }
    e.used = true;
    return e.value;
  }

  set(key: string, value: V, until: number, now = Date.now()): void {
    const old = this.entries.get(key);
    if (old !== undefined) old.live = false;
    else if (this.entries.size >= this.capacity) this.evictOne(now);
    const e: CacheEntry<V> = { key, value, until, used: false, live: true };
    this.entries.set(key, e);
    this.enqueue(e);
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    e.live = false;
  }

  clear(): void {
    this.entries.clear();
    this.queue = [];
    this.head = 0;
  }

  private enqueue(e: CacheEntry<V>): void {
    const queue = this.queue;
    if (queue.length - this.head >= 2 * this.capacity + 16) {
      // More dead entries than live ones: keep the live ones, in their order.
      const live: Array<CacheEntry<V> | undefined> = [];
      for (let i = this.head; i < queue.length; i++) if (queue[i]!.live) live.push(queue[i]!);
      this.queue = live;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= queue.length) {
      // Drop what was taken from the front, so the array does not grow without end.
      queue.splice(0, this.head);
      this.head = 0;
    }
    this.queue.push(e);
  }

  /** Each entry gets at most one second chance per pass, so this ends within one pass over the queue. */
  private evictOne(now: number): void {
    const queue = this.queue;
    while (this.head < queue.length) {
      const e = queue[this.head]!;
      queue[this.head++] = undefined;
      if (!e.live) continue;
      if (!e.used || e.until <= now) {
        this.entries.delete(e.key);
        e.live = false;
        return;
      }
      e.used = false;
      queue.push(e);
    }
  }
}

interface CacheEntry<V> {
  readonly key: string;
  readonly value: V;
  readonly until: number;
  /** Hit since it was last considered for eviction. */
  used: boolean;
  /** Still the Map's entry for its key (false once deleted, replaced or evicted). */
  live: boolean;
}

// ---- verifying a token's signature and claims ------------------------------------------------------

/** Exactly three unpadded base64url segments (RFC 7515 §2, §7.1). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Far above any latchkey token (≈ 700 bytes); parsing stops here. */
const MAX_TOKEN_LENGTH = 8192;

/**
 * One spelling per byte string (RFC 4648 §3.5): a segment's length is never one more than a multiple of
 * four, and the bits its last character carries beyond the last byte are zero. Decoders (Buffer, jose)
 * ignore those bits, so without this rule a 256-byte signature has sixteen spellings (its 342nd character
 * carries four spare bits): sixteen token strings for one token, which a cache or deny-list keyed by the
 * token's text would tell apart. The token already matched COMPACT_JWS.
 */
function canonical(token: string, start: number, end: number): boolean {
  const rest = (end - start) % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  return (sextet(token.charCodeAt(end - 1)) & (rest === 2 ? 0b1111 : 0b11)) === 0;
}

/** The value of a base64url character (RFC 4648 §5). */
function sextet(c: number): number {
  if (c >= 65 && c <= 90) return c - 65; // A-Z
  if (c >= 97 && c <= 122) return c - 71; // a-z
  if (c >= 48 && c <= 57) return c + 4; // 0-9
  return c === 45 ? 62 : 63; // - _
}

/** The media type comparison of RFC 7515 §4.1.9 as jose applies it: `at+jwt` is `application/at+jwt`. */
const normalizeTyp = (typ: string) => (typ.includes('/') ? typ.toLowerCase() : `application/${typ.toLowerCase()}`);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function decodeJson(segment: string): unknown {
  // Buffer keeps a byte order mark (RFC 8259 §8.1 forbids it before JSON), and JSON.parse refuses it.
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
}

/**
 * An RSA public key of at least 2048 bits (RFC 7518 §3.3) as a node:crypto KeyObject, from whatever a
 * jose key resolver returns: a CryptoKey (jose's JWKS sets), a KeyObject, or a JWK. Anything else — a
 * shared secret (Uint8Array), an RSA-PSS or EC key, a private key — is not a key for RS256.
 */
const converted = new WeakMap<object, KeyObject | null>();
const WebCryptoKey = (globalThis as { CryptoKey?: typeof webcrypto.CryptoKey }).CryptoKey;
function rs256Key(key: unknown): KeyObject | null {
  if (typeof key !== 'object' || key === null || key instanceof Uint8Array) return null;
  if (key instanceof KeyObject) return usableRsa(key);
  let k = converted.get(key);
  if (k !== undefined) return k;
  k = null;
  try {
    if (WebCryptoKey && key instanceof WebCryptoKey) {
      const alg = key.algorithm as webcrypto.RsaHashedKeyAlgorithm;
      if (key.type === 'public' && alg.name === 'RSASSA-PKCS1-v1_5' && alg.hash.name === 'SHA-256' && key.usages.includes('verify')) {
        k = usableRsa(KeyObject.from(key));
      }
    } else if ((key as { kty?: unknown }).kty === 'RSA' && !('d' in key)) {
      k = usableRsa(createPublicKey({ key: key as JsonWebKey, format: 'jwk' }));
    }
  } catch {
    k = null;
  }
  converted.set(key, k);
  return k;
}

function usableRsa(k: KeyObject): KeyObject | null {
  return k.type === 'public' && k.asymmetricKeyType === 'rsa' && (k.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 ? k : null;
}

export interface ClaimRules {
  issuer: string;
  audience: string | string[];
  clockToleranceSeconds: number;
  maxLifetimeSeconds: number;
}

/**
 * Headers of tokens whose signature held, by their encoded form: latchkey signs every token of a key with
 * the same header bytes (src/tokens/access-token.ts), so a verifier sees one per key. Only verified ones
 * are kept, at most a handful, so forged headers cannot fill it.
 */
const verifiedHeaders = new Map<string, JWTHeaderParameters>();
const MAX_HEADERS = 32;

/** The protected header, with the rules that do not depend on the key. */
function parseHeader(h: string): JWTHeaderParameters {
  let header: unknown;
  try {
    header = decodeJson(h);
  } catch {
    throw new VerifyError('invalid', 'malformed header');
  }
  if (!isObject(header) || header.alg !== 'RS256') throw new VerifyError('invalid', 'alg must be RS256');
  if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== 'application/at+jwt') throw new VerifyError('invalid', 'typ must be at+jwt');
  if (typeof header.kid !== 'string') throw new VerifyError('invalid', 'kid missing');
  // No extension latchkey knows of is critical (RFC 7515 §4.1.11), so any `crit` is refused.
  if ('crit' in header) throw new VerifyError('invalid', 'unsupported crit');
  return header as JWTHeaderParameters;
}

/**
 * Verifies a latchkey access token: the JWS compact serialisation (RFC 7515 §7.1), RS256 only (RFC 8725
 * §3.1: the algorithm is pinned, never taken from the header), `typ` at+jwt (RFC 9068 §2.1), a `kid`
 * the resolver knows, the signature with node:crypto, then the claims. Returns the claims or throws a
 * `VerifyError` (`expired`, else `invalid`).
 *
 * It is written out rather than delegated to jose's `jwtVerify`, which verifies through WebCrypto and costs
 * about four times a raw RSA verification here (BENCHMARKS.md): a resource server pays that for every
 * token it sees for the first time. The rules are jose's, plus what latchkey's tokens always satisfy:
 * no padding, whole-second `iat` and `exp`, `iat` not in the future, a bounded lifetime.
 */
export async function verifyAccessToken(token: string, getKey: JWTVerifyGetKey, rules: ClaimRules, nowMs: number): Promise<AccessTokenClaims> {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) throw new VerifyError('invalid', 'not a JWS compact serialisation');
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (!canonical(token, 0, dot1) || !canonical(token, dot1 + 1, dot2) || !canonical(token, dot2 + 1, token.length)) {
    throw new VerifyError('invalid', 'not canonical base64url');
  }
  const h = token.slice(0, dot1);
  const known = verifiedHeaders.get(h);
  const header = known ?? parseHeader(h);
  const p = token.slice(dot1 + 1, dot2);
  const s = token.slice(dot2 + 1);
  let key: KeyObject | null;
  try {
    const input: FlattenedJWSInput = { protected: h, payload: p, signature: s };
    key = rs256Key(await getKey(header, input));
  } catch {
    throw new VerifyError('invalid', 'no key for this kid');
  }
  if (!key) throw new VerifyError('invalid', 'not an RS256 key');
  // The signing input is ASCII (the pattern above), so latin1 is the cheapest exact conversion to bytes;
  // the signature is decoded right behind it. Nothing else runs until rsaVerify returns.
  scratch.write(token, 0, dot2, 'latin1');
  const sigLength = scratch.write(s, dot2, 'base64url');
  if (!rsaVerify('sha256', scratch.subarray(0, dot2), key, scratch.subarray(dot2, dot2 + sigLength))) {
    throw new VerifyError('invalid', 'signature verification failed');
  }
  if (!known && verifiedHeaders.size < MAX_HEADERS) verifiedHeaders.set(h, Object.freeze(header));
  let payload: unknown;
  try {
    // As decodeJson: a byte order mark is kept, and JSON.parse refuses it.
    payload = JSON.parse(scratch.toString('utf8', 0, scratch.write(p, 0, 'base64url')));
  } catch {
    throw new VerifyError('invalid', 'malformed payload');
  }
  if (!isObject(payload)) throw new VerifyError('invalid', 'malformed payload');
  return checkClaims(payload, rules, nowMs);
}

/**
 * Where a token's bytes are decoded while it is verified, instead of three Buffers per token. The signing
 * input and the decoded signature behind it fit in the token's length (a decoded segment is shorter than its
 * text), hence in MAX_TOKEN_LENGTH. Everything from the first write to the last read is synchronous, so
 * one buffer serves every verifier in the process.
 */
const scratch = Buffer.allocUnsafeSlow(MAX_TOKEN_LENGTH);

function invalid(why: string): never {
  throw new VerifyError('invalid', why);
}

/** `aud` is the accepted audience or one of them, or an array holding at least one such. */
function audienceAccepted(aud: unknown, accepted: string | string[]): boolean {
  if (typeof aud === 'string') return isAccepted(aud, accepted);
  if (!Array.isArray(aud)) return false;
  for (const a of aud) if (isAccepted(a, accepted)) return true;
  return false;
}

const isAccepted = (a: unknown, accepted: string | string[]) => (typeof accepted === 'string' ? a === accepted : accepted.includes(a as string));

function isStringArray(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (const x of v) if (typeof x !== 'string') return false;
  return true;
}

/** The claims rules (RFC 7519 §4.1, RFC 9068 §2.2), in jose's order: shapes, then expiry, then plausibility. */
function checkClaims(c: Record<string, unknown>, rules: ClaimRules, nowMs: number): AccessTokenClaims {
  if (c.iss !== rules.issuer) invalid('unexpected iss');
  if (!audienceAccepted(c.aud, rules.audience)) invalid('unexpected aud');
  if (typeof c.sub !== 'string' || typeof c.jti !== 'string' || typeof c.sid !== 'string') invalid('malformed claims');
  if (c.roles !== undefined && !isStringArray(c.roles)) invalid('malformed roles');
  const { iat, exp, nbf } = c;
  if (typeof iat !== 'number' || typeof exp !== 'number') invalid('iat and exp are required numbers');
  const now = Math.floor(nowMs / 1000);
  const tolerance = rules.clockToleranceSeconds;
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) invalid('nbf check failed');
  if ((exp as number) <= now - tolerance) throw new VerifyError('expired', 'token expired');
  // jose takes any JSON number here: Infinity (1e309), fractions, an iat after exp or in the future.
  // latchkey signs whole seconds (RFC 7519 §2 NumericDate) for a bounded lifetime.
  if (
    !Number.isSafeInteger(iat) ||
    !Number.isSafeInteger(exp) ||
    (iat as number) > nowMs / 1000 + tolerance ||
    (iat as number) >= (exp as number) ||
    (exp as number) - (iat as number) > rules.maxLifetimeSeconds
  ) {
    invalid('implausible iat or exp');
  }
  return c as AccessTokenClaims;
}

// ---- following the revocation stream -------------------------------------------------------------

export interface RevocationFollowerOptions {
  /** Opens the connection the stream is read on (it blocks, so it must not be shared). */
  connect: () => RedisClientLike;
  /** latchkey's REDIS_KEY_PREFIX, which the connection must not apply itself. Default `lk:`. */
  keyPrefix?: string;
  /** Each revocation fact, as it is read. */
  onFact: (fact: RevocationFact) => void;
  /** The incident switch as stored, read at every (re)sync; `global` facts on the stream keep it current. */
  onGlobal?: (g: GlobalRevocation) => void;
  /** Revocations may have been missed or the store lost its data: nothing decided so far can be trusted. */
  onReset: (why: string) => void;
  /** After each successful read (to prune what has expired). */
  onSync?: (at: number) => void;
  logger?: VerifierLogger;
  now?: () => number;
}

export interface RevocationFollower {
  /** Resolves once the stream is being followed. */
  ready(): Promise<void>;
  /** When the stream was last read successfully (epoch ms, 0 never). */
  lastSync(): number;
  /** Whether the stream connection is up right now (a dead one is noticed before it goes stale). */
  connected(): boolean;
  close(): Promise<void>;
}

/**
 * Follows latchkey's revocation stream with a blocking read. After a reconnect it resumes where it
 * stopped; if the stream no longer reaches back that far, or the store's epoch marker vanished or changed
 * (Redis lost its data), it calls `onReset`. The building block of `createVerifier`, and of latchkey's own
 * forward auth.
 */
export function followRevocations(options: RevocationFollowerOptions): RevocationFollower {
  const now = options.now ?? Date.now;
  const prefix = options.keyPrefix ?? 'lk:';
  const log = options.logger ?? silent;
  let reader: RedisClientLike | null = null;
  let lastSync = 0;
  let closed = false;
  let lastId = '$';
  /** The store's epoch marker as last read; undefined before the first read. */
  let epoch: string | null | undefined;
  let markReady: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  const idAfter = (a: string, b: string) => {
    const [am, as] = a.split('-').map(Number) as [number, number];
    const [bm, bs] = b.split('-').map(Number) as [number, number];
    return am > bm || (am === bm && as > bs);
  };

  /**
   * Compares the store's epoch marker with the one seen before. latchkey keeps the marker present; the
   * follower only reads it, so it works with a read-only Redis user.
   */
  async function checkEpoch(client: RedisClientLike): Promise<void> {
    const current = (await client.call('GET', prefix + keyNames.epoch)) as string | null;
    // A missing marker means the data is gone and latchkey has not marked the new epoch yet: nothing
    // cached can be trusted while it stays missing (a second loss in that time would look the same).
    if (current === null) options.onReset('the store lost its data (no epoch marker)');
    else if (epoch !== undefined && current !== epoch) options.onReset('the store lost its data (epoch changed)');
    epoch = current;
  }

  /** After a break: resume if the stream still reaches back to where we stopped, else start over. */
  async function resync(client: RedisClientLike): Promise<void> {
    await checkEpoch(client);
    options.onGlobal?.(parseGlobal(await client.call('HGETALL', prefix + keyNames.global)));
    if (lastId === '$') {
      const last = (await client.call('XREVRANGE', prefix + keyNames.revocations, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      lastId = last[0]?.[0] ?? '0-0';
      return;
    }
    const first = (await client.call('XRANGE', prefix + keyNames.revocations, '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
    const firstId = first[0]?.[0];
    if (!firstId || idAfter(firstId, lastId)) {
      if (lastId !== '0-0') options.onReset('revocation events may have been missed');
      lastId = '0-0';
    }
  }

  async function follow(): Promise<void> {
    let needResync = true;
    let backoff = 100;
    while (!closed) {
      try {
        if (!reader) {
          reader = options.connect();
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
            if (fact) options.onFact(fact);
          }
        }
        await checkEpoch(reader);
        lastSync = now();
        options.onSync?.(lastSync);
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

  const following = follow();
  return {
    ready: () => readyPromise,
    lastSync: () => lastSync,
    connected: () => reader !== null && (reader.status === undefined || reader.status === 'ready'),
    async close() {
      closed = true;
      reader?.disconnect();
      await following;
    },
  };
}

// ---- the verifier ----------------------------------------------------------------------------------

interface Known {
  claims: AccessTokenClaims;
  /** Set when the store said no at first sight. */
  revoked: boolean;
}

const BLOCK_MS = 1000;
const silent: VerifierLogger = { warn: () => undefined, error: () => undefined };

export function createVerifier(options: VerifierOptions): Verifier {
  const now = options.now ?? Date.now;
  const tolerance = Math.min(options.clockToleranceSeconds ?? 5, 30);
  const rules: ClaimRules = {
    issuer: options.issuer,
    audience: options.audience,
    clockToleranceSeconds: tolerance,
    maxLifetimeSeconds: options.maxLifetimeSeconds ?? 86_400,
  };
  const prefix = options.keyPrefix ?? 'lk:';
  const maxStaleness = options.maxStalenessMs ?? 3000;
  const policy = options.revocation ?? { policy: 'failClosed' as const };
  const log = options.logger ?? silent;
  const redis = options.redis;
  if (redis?.options?.keyPrefix) throw new Error('pass a Redis client without keyPrefix; set the verifier keyPrefix option instead');
  // jose's remote key set refetches on an unknown kid, single-flight, at most once per cooldown (30 s).
  const getKey = options.getKey ?? (options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : undefined);
  if (!getKey) throw new Error('createVerifier needs jwksUrl or getKey');

  const stats: VerifierStats = { accepted: 0, expired: 0, revoked: 0, invalid: 0, unavailable: 0, redisLookups: 0 };
  const known = new TokenCache<Known>(options.cacheSize ?? 10_000);
  const revokedSids = new Map<string, number>();
  const deniedJtis = new Map<string, number>();
  /** The incident switch: read at every (re)sync, then kept current by `global` facts on the stream. */
  let global: GlobalRevocation = { all: 0, roles: {} };
  /** Bumped whenever cached answers are dropped: an answer asked for before that must not be cached after. */
  let generation = 0;
  let lastOpenWarning = 0;

  const decide = (d: Decision) => {
    stats[d === 'accepted' ? 'accepted' : d]++;
    options.onDecision?.(d);
  };
  const fail = (code: VerifyErrorCode, message: string): never => {
    decide(code);
    throw new VerifyError(code, message);
  };

  /** Remembered at most until the token expires (with the tolerance); a forgotten token is checked again. */
  const remember = (token: string, entry: Known) => known.set(token, entry, (entry.claims.exp + tolerance) * 1000, now());

  const follower = redis
    ? followRevocations({
        // The stream reader blocks its connection, so it gets its own; it may queue while connecting.
        connect: () => (redis.isCluster ? redis.duplicate([], { enableOfflineQueue: true }) : redis.duplicate({ enableOfflineQueue: true })),
        keyPrefix: prefix,
        logger: log,
        now,
        onFact(fact) {
          // A fact's exp allows for latchkey's clock skew; this verifier accepts tokens for its own
          // tolerance past exp, which may be longer, and its cache still says "accepted" all that time.
          const until = fact.exp + tolerance * 1000;
          if (fact.type === 'sid') revokedSids.set(fact.sid, until);
          else if (fact.type === 'jti') deniedJtis.set(fact.jti, until);
          else global = applyGlobal(global, fact);
        },
        onGlobal(g) {
          global = g;
        },
        onReset(why) {
          if (known.size > 0) log.warn({ why, dropped: known.size }, 'revocation cache reset');
          known.clear();
          generation++;
        },
        onSync(t) {
          for (const [sid, exp] of revokedSids) if (exp <= t) revokedSids.delete(sid);
          for (const [jti, exp] of deniedJtis) if (exp <= t) deniedJtis.delete(jti);
        },
      })
    : null;

  function fresh(): boolean {
    return now() - follower!.lastSync() <= maxStaleness;
  }

  /** The policy when revocation state is unknown: refuse, or accept for a bounded time and say so. */
  function whenUnknown(claims: AccessTokenClaims): AccessTokenClaims {
    const lastSync = follower!.lastSync();
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
    const cached = known.get(token, t);
    let claims: AccessTokenClaims;
    if (cached) claims = cached.claims;
    else {
      try {
        claims = await verifyAccessToken(token, getKey!, rules, t);
      } catch (err) {
        if (err instanceof VerifyError) return fail(err.code, err.message);
        return fail('invalid', (err as Error).message);
      }
      if (!redis) remember(token, { claims, revoked: false });
    }
    if (!redis) {
      decide('accepted');
      return claims;
    }
    if (cached?.revoked || revokedSids.has(claims.sid) || deniedJtis.has(claims.jti) || revokedGlobally(global, claims)) {
      return fail('revoked', 'token revoked');
    }
    if (!fresh()) return whenUnknown(claims);
    if (!cached) {
      const gen = generation;
      let active: boolean;
      try {
        active = await firstSight(claims);
      } catch (err) {
        log.error({ reason: (err as Error).message }, 'revocation lookup failed');
        return whenUnknown(claims);
      }
      if (gen === generation) remember(token, { claims, revoked: !active });
      if (!active) return fail('revoked', 'token revoked');
    }
    decide('accepted');
    return claims;
  }

  if (follower) void follower.ready();
  return {
    verify,
    ready: () => follower?.ready() ?? Promise.resolve(),
    stats: () => ({ ...stats }),
    async close() {
      await follower?.close();
    },
  };
}
