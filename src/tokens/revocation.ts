import type { Logger } from 'pino';
import type { ActionContext } from '../audit/context.js';
import { ApiError } from '../errors.js';
import type { AuthEvent, EventBus, SessionRevokeReason, UserRevokeReason } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import type { RevocationFact } from '@latchkey/verifier/protocol';
import type { AccessClaims } from './access-token.js';
import { hashSecret, parseRefreshToken } from './refresh-token.js';

export interface RevocationsDeps {
  store: Store;
  events: EventBus;
  clock: () => number;
  log: Logger;
  /**
   * How long a revocation fact matters, in ms: the longest any checker accepts a token issued now (its
   * lifetime, the allowed clock skew, and a margin for drift between instances).
   */
  horizonMs: number;
  /** Clock skew plus drift margin, in ms: how long past `exp` a deny-list entry must outlive the token. */
  graceAfterExpMs: number;
  metrics?: Pick<Metrics, 'revocationPublished'>;
  /** The longest a session lives (ms): how long the incident switch's mark must be kept. Default 30 days. */
  sessionMaxMs?: number;
}

/**
 * Every way a session or token is revoked ends the same way (README "Security model"): the store has
 * revoked it; then it is logged, emitted as an event, announced on the revocation
 * stream for verifiers, and — where the store has replicas to wait for — confirmed to survive a failover.
 * Each method takes the action context of whoever revokes, for the events' audit entries.
 */
export class Revocations {
  constructor(private readonly deps: RevocationsDeps) {}

  /**
   * Logout: revokes the session of the presented refresh token (if genuine) and deny-lists the presented
   * access token. Idempotent: nothing left to revoke is not an error. When both are given they must
   * belong to the same user, so one user's access token cannot be used to log another out.
   */
  async logout(refreshToken: string | undefined, access: AccessClaims | null, context: ActionContext): Promise<void> {
    const { store } = this.deps;
    const now = this.deps.clock();
    const presented = refreshToken ? parseRefreshToken(refreshToken) : null;
    if (presented && access && presented.userId !== access.sub) {
      throw new ApiError('invalid_request', 'The access token and the refresh token belong to different sessions.');
    }
    const facts: RevocationFact[] = [];
    const events: AuthEvent[] = [];
    if (access) {
      await store.denyAccessToken(access.sub, access.jti, access.exp * 1000 + this.deps.graceAfterExpMs, now);
      events.push({ type: 'access_token_denied', userId: access.sub, jti: access.jti, exp: access.exp });
      facts.push({ type: 'jti', uid: access.sub, jti: access.jti, exp: now + this.deps.horizonMs });
    }
    const revoked =
      presented !== null &&
      (await store.revokeSessionByToken({
        userId: presented.userId,
        sessionId: presented.sessionId,
        secretHash: hashSecret(presented.secret),
        tag: presented.tag,
      }));
    if (presented && revoked) {
      this.deps.log.info({ userId: presented.userId, sessionId: presented.sessionId }, 'logout');
      events.push({ type: 'session_revoked', userId: presented.userId, sessionId: presented.sessionId, reason: 'logout' });
      facts.push(this.sidFact(presented.userId, presented.sessionId, now));
    }
    // Confirmed also when nothing was left to revoke: a retry after a 503 must not succeed before the
    // first attempt's revocation is safe.
    await this.finish(now, events, facts, context);
  }

  /**
   * Deny-lists one access token until it expires (an operator revoking a leaked token). `exp` in seconds,
   * as in the token.
   */
  async revokeAccessToken(userId: string, jti: string, exp: number, context: ActionContext): Promise<void> {
    const now = this.deps.clock();
    await this.deps.store.denyAccessToken(userId, jti, exp * 1000 + this.deps.graceAfterExpMs, now);
    await this.finish(
      now,
      [{ type: 'access_token_denied', userId, jti, exp }],
      [{ type: 'jti', uid: userId, jti, exp: now + this.deps.horizonMs }],
      context,
    );
  }

  /** Revokes every session of the user and every access token issued so far (logout-all). */
  async revokeUser(userId: string, reason: UserRevokeReason, context: ActionContext): Promise<void> {
    const now = this.deps.clock();
    const sessionIds = await this.deps.store.revokeAllSessions(userId, now);
    await this.userRevoked(userId, sessionIds, now, reason, context);
  }

  /** Revokes one session of the user. False if the user has no such session (a retry is confirmed too). */
  async revokeSession(userId: string, sessionId: string, reason: SessionRevokeReason, context: ActionContext): Promise<boolean> {
    const now = this.deps.clock();
    if (!(await this.deps.store.revokeSession(userId, sessionId))) {
      await this.deps.store.confirmRevocations();
      return false;
    }
    await this.sessionsRevoked(userId, [sessionId], now, reason, context);
    return true;
  }

  /** The store has revoked these sessions of the user (one by one, or pushed out by the session cap). */
  async sessionsRevoked(userId: string, sessionIds: string[], now: number, reason: SessionRevokeReason, context: ActionContext): Promise<void> {
    this.deps.log.info({ userId, sessionIds, reason }, 'sessions revoked');
    await this.finish(
      now,
      sessionIds.map((sessionId) => ({ type: 'session_revoked' as const, userId, sessionId, reason })),
      sessionIds.map((sid) => this.sidFact(userId, sid, now)),
      context,
    );
  }

  /** The store has revoked every session of the user and marked `revokedAfter = now`. */
  async userRevoked(userId: string, sessionIds: string[], now: number, reason: UserRevokeReason, context: ActionContext): Promise<void> {
    this.deps.log.info({ userId, sessions: sessionIds.length, reason }, 'every session of the user revoked');
    await this.finish(
      now,
      [{ type: 'user_sessions_revoked', userId, revokedAfter: now, sessionIds, reason }],
      sessionIds.map((sid) => this.sidFact(userId, sid, now)),
      context,
    );
  }

  /**
   * The store found a spent refresh token outside the grace window and revoked its session. The presenter
   * is refused whatever happens here, so a failed replica confirmation is an alert, not the client's error.
   * `context`: the presenter's request (its address goes into the event too).
   */
  async reuseDetected(userId: string, sessionId: string, now: number, context: ActionContext): Promise<void> {
    const { ip } = context;
    this.deps.log.warn(
      { event: 'refresh_token_reused', userId, sessionId, ip },
      'security: a spent refresh token was presented again; session revoked',
    );
    await this.finish(now, [{ type: 'refresh_token_reused', userId, sessionId, ip }], [this.sidFact(userId, sessionId, now)], context).catch(
      (err: Error) => this.deps.log.error({ sessionId, reason: err.message }, 'reuse revocation not confirmed by replicas'),
    );
  }

  /**
   * The incident switch: every session created before now is revoked — every user's, or with `role` only
   * those of users holding it — at latchkey's endpoints and GET /verify at once (each check reads the
   * mark), refresh refused for those sessions, and verifiers within about a second (a `global` fact).
   * The mark is rounded up to the next whole second, since access tokens carry `iat` in whole seconds;
   * logins in the rest of that second are held until it (TokenIssuer.startSession), so they stay valid.
   * There is nothing to undo: users log in again. Returns the mark (ms).
   */
  async revokeEveryone(role: string | null, context: ActionContext): Promise<number> {
    const now = this.deps.clock();
    const revokedAfter = Math.ceil(now / 1000) * 1000;
    const retainMs = (this.deps.sessionMaxMs ?? 30 * 86_400_000) + this.deps.horizonMs;
    await this.deps.store.revokeEveryone(revokedAfter, role, retainMs);
    this.deps.log.warn({ event: 'everyone_revoked', revokedAfter, role }, role === null ? 'every session of every user revoked' : `every session of every ${role} revoked`);
    await this.finish(
      now,
      [{ type: 'everyone_revoked', revokedAfter, role }],
      [{ type: 'global', ra: revokedAfter, role, exp: now + this.deps.horizonMs }],
      context,
    );
    return revokedAfter;
  }

  private sidFact(uid: string, sid: string, now: number): RevocationFact {
    return { type: 'sid', uid, sid, exp: now + this.deps.horizonMs };
  }

  /** emit → announce → confirm. The revocation itself is done before this runs. */
  private async finish(now: number, events: AuthEvent[], facts: RevocationFact[], context: ActionContext): Promise<void> {
    for (const event of events) this.deps.events.emit(event, context);
    await this.announce(now, facts);
    await this.deps.store.confirmRevocations();
  }

  /**
   * Publishes revocation facts. The revocation itself is already done and stands; if publishing fails,
   * verifiers that already cached a token of this session keep accepting it until it expires. That is
   * logged as an error, not answered as a failure the client could only retry into a no-op.
   */
  private async announce(now: number, facts: RevocationFact[]): Promise<void> {
    if (facts.length === 0) return;
    try {
      await this.deps.store.publish(facts, now);
      this.deps.metrics?.revocationPublished((this.deps.clock() - now) / 1000);
    } catch (err) {
      this.deps.metrics?.revocationPublished(null);
      this.deps.log.error({ reason: (err as Error).message, facts: facts.length }, 'could not publish revocations to verifiers');
    }
  }
}
