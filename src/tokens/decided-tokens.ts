import { followRevocations, TokenCache, type RedisClientLike, type RevocationFollower } from '@latchkey/verifier';
import { applyGlobal, revokedGlobally, type GlobalRevocation, type RevocationFact } from '@latchkey/verifier/protocol';
import type { Logger } from 'pino';
import type { AuthEvent } from '../events.js';
import type { AccessClaims } from './access-token.js';

/** What `lookup` answers for a token whose session or jti is known to be revoked. */
export const REVOKED = Symbol('revoked');

/** How old the last read of the revocation stream may be for a cached decision to stand (a read blocks ≤ 1 s). */
const STREAM_FRESH_MS = 2000;

export interface DecidedTokensOptions {
  /** How many tokens to remember; beyond that the least recently used are forgotten. */
  capacity: number;
  /** Allowed clock skew, ms: a token is accepted until `exp` + this, and so is its cached decision. */
  skewMs: number;
  /** How long a revocation made here matters, ms (the facts' horizon, src/app.ts). */
  horizonMs: number;
  /** Whether the key that signed a token is still published (a removed key's tokens stop at once). */
  keyPublished: (kid: string, now: number) => boolean;
  /**
   * Redis: how to follow the revocation stream other instances publish to, and whether the store's own
   * connection is up. Null for the embedded store, where every revocation is an event of this process.
   */
  stream: { connect: () => RedisClientLike; keyPrefix: string; connected: () => boolean } | null;
  clock: () => number;
  log: Logger;
}

interface Decided {
  claims: AccessClaims;
  kid: string;
}

/**
 * Forward auth's memory of tokens already decided, so that a hot token costs a map lookup instead of an
 * RSA verification and a store round trip: the same design as `@latchkey/verifier` (the package's
 * TokenCache and revocation-stream follower), kept inside latchkey.
 *
 * - A token is remembered only after its signature, claims and store state were checked in full, keyed by
 *   the whole token string (any other string, a tampered one included, is verified in full), and never
 *   past `exp` + the allowed skew. At most `capacity` tokens: memory stays bounded under any flood.
 * - Revocations made by this instance reach it synchronously through the EventBus (`onEvent`), before the
 *   revoking request is answered; revocations by other instances arrive on the Redis revocation stream,
 *   within about a second.
 * - A cached decision is used only while the stream is followed (read within the last 2 s, connection up)
 *   and the store's connection is up; otherwise every check goes to the store as before, so an outage
 *   meets the configured fail policy (README "Security model").
 * - When events may have been missed (stream trimmed past where it stopped) or Redis lost its data, every
 *   cached decision is dropped.
 */
export class DecidedTokens {
  private readonly tokens: TokenCache<Decided>;
  /** Revoked session ids and deny-listed jtis, each until no token it applies to can be accepted. */
  private readonly revokedSids = new Map<string, number>();
  private readonly deniedJtis = new Map<string, number>();
  /** The incident switch (read at every stream resync, then kept current by facts and events). */
  private global: GlobalRevocation = { all: 0, roles: {} };
  private readonly follower: RevocationFollower | null;
  private readonly pruner: NodeJS.Timeout;
  /** Bumped whenever cached decisions are dropped: an answer asked for before that is not cached after. */
  private generation = 0;

  constructor(private readonly o: DecidedTokensOptions) {
    this.tokens = new TokenCache(o.capacity);
    this.follower = o.stream
      ? followRevocations({
          connect: o.stream.connect,
          keyPrefix: o.stream.keyPrefix,
          logger: o.log,
          onFact: (fact) => this.apply(fact),
          onGlobal: (g) => (this.global = g),
          onReset: (why) => this.reset(why),
        })
      : null;
    this.pruner = setInterval(() => this.prune(o.clock()), 10_000);
    this.pruner.unref();
  }

  /** Resolves once revocations from other instances are followed (at once for the embedded store). */
  ready(): Promise<void> {
    return this.follower?.ready() ?? Promise.resolve();
  }

  /**
   * The claims of a token decided before whose decision still stands; REVOKED if revoked since;
   * undefined when it must be decided in full (unknown, expired, its key withdrawn, or revocations not
   * followed right now).
   */
  lookup(token: string, now: number): AccessClaims | typeof REVOKED | undefined {
    const hit = this.tokens.get(token, now);
    if (hit === undefined) return undefined;
    const { claims } = hit;
    if (this.revoked(claims)) return REVOKED;
    if (!this.following() || !this.o.keyPublished(hit.kid, now)) return undefined;
    return claims;
  }

  /** True if this token's session or jti is known to be revoked (checked after a store lookup, too). */
  revoked(claims: AccessClaims): boolean {
    return this.revokedSids.has(claims.sid) || this.deniedJtis.has(claims.jti) || revokedGlobally(this.global, claims);
  }

  /** Taken before asking the store; `remember` caches the answer only if nothing was missed meanwhile. */
  mark(): number {
    // Before the stream is first read, a revocation published between the store's answer and the
    // follower's starting point would never be seen: nothing is cached until then.
    return this.follower && this.follower.lastSync() === 0 ? -1 : this.generation;
  }

  /** Caches a decision the store confirmed (`mark` taken before asking it). */
  remember(token: string, claims: AccessClaims, mark: number): void {
    if (mark !== this.generation) return;
    let kid: unknown;
    try {
      kid = (JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as { kid?: unknown }).kid;
    } catch {
      return;
    }
    if (typeof kid !== 'string') return;
    this.tokens.set(token, { claims, kid }, claims.exp * 1000 + this.o.skewMs, this.o.clock());
  }

  /**
   * Revocations made by this instance, applied before the revoking request is answered (the EventBus is
   * synchronous, src/tokens/revocation.ts emits before it returns).
   */
  onEvent(event: AuthEvent): void {
    const until = this.o.clock() + this.o.horizonMs;
    switch (event.type) {
      case 'session_revoked':
      case 'refresh_token_reused':
        this.revokedSids.set(event.sessionId, until);
        break;
      case 'user_sessions_revoked':
        for (const sid of event.sessionIds) this.revokedSids.set(sid, until);
        break;
      case 'access_token_denied':
        this.deniedJtis.set(event.jti, until);
        break;
      case 'everyone_revoked':
        this.global = applyGlobal(this.global, { ra: event.revokedAfter, role: event.role });
        break;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.pruner);
    await this.follower?.close();
  }

  /** A fact from the stream: its exp already allows for skew and drift (src/tokens/revocation.ts). */
  private apply(fact: RevocationFact): void {
    const until = fact.exp + this.o.skewMs;
    if (fact.type === 'sid') this.revokedSids.set(fact.sid, Math.max(until, this.revokedSids.get(fact.sid) ?? 0));
    else if (fact.type === 'jti') this.deniedJtis.set(fact.jti, Math.max(until, this.deniedJtis.get(fact.jti) ?? 0));
    else this.global = applyGlobal(this.global, fact);
  }

  private reset(why: string): void {
    this.generation++;
    if (this.tokens.size > 0) this.o.log.warn({ why, dropped: this.tokens.size }, 'forward-auth cache reset');
    this.tokens.clear();
  }

  private following(): boolean {
    if (!this.follower) return true;
    return this.follower.connected() && this.o.stream!.connected() && Date.now() - this.follower.lastSync() <= STREAM_FRESH_MS;
  }

  private prune(now: number): void {
    for (const [sid, until] of this.revokedSids) if (until <= now) this.revokedSids.delete(sid);
    for (const [jti, until] of this.deniedJtis) if (until <= now) this.deniedJtis.delete(jti);
  }
}
