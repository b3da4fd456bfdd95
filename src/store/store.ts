/**
 * The storage contract. Two implementations keep it: Redis (production) and in-memory (development).
 * One contract suite (test/store/contract.ts) runs against both.
 *
 * Rules every implementation follows:
 * - All times are epoch milliseconds passed in by the caller (`now`), never read from a clock here, so
 *   tests control time. TTLs are set relative to `now`.
 * - Every write that belongs to one session is one atomic step: two concurrent calls never both succeed
 *   where only one may (rotation, revocation).
 * - Nothing usable is stored in clear: refresh secrets arrive as SHA-256 hashes; for the grace window
 *   the store keeps a nonce from which only the holder of the spent token can derive its successor.
 * - Every record has a TTL or a bound. User records are bounded by the number of users.
 * - A store that cannot answer throws `StoreUnavailableError`; it never answers "not found" or "not
 *   revoked" in place of an error.
 */

import type { GlobalRevocation, RevocationFact } from '@latchkey/verifier/protocol';

export type Channel = 'cookie' | 'body';

export interface UserRecord {
  id: string;
  /** Normalised (trimmed, NFKC, lower-case). */
  email: string;
  /** argon2id PHC string. */
  passwordHash: string;
  roles: string[];
  disabled: boolean;
  createdAt: number;
  /** Every session created before this instant is revoked (logout-all, disable). 0 = never. */
  revokedAfter: number;
}

export interface SessionRecord {
  id: string;
  userId: string;
  createdAt: number;
  lastUsedAt: number;
  /** When the current refresh token expires (idle lifetime, capped by `absoluteExpiresAt`). */
  expiresAt: number;
  /** The session never lives beyond this, however often it is refreshed. */
  absoluteExpiresAt: number;
  userAgent: string | null;
  ip: string | null;
}

export interface NewSession {
  userId: string;
  sessionId: string;
  /** SHA-256 of the first refresh token's secret. */
  secretHash: Buffer;
  /** Per-session key that authenticates this session's tokens (see `tag`). 16 random bytes. */
  macKey: Buffer;
  channel: Channel;
  /** The client the session is for (RFC 9068 §2.2); null: its channel's default client, stored as nothing. */
  client?: string | null;
  userAgent: string | null;
  ip: string | null;
  now: number;
  /** Idle lifetime of each refresh token. */
  refreshTtlMs: number;
  /** Absolute lifetime of the session. */
  absoluteTtlMs: number;
  /** Beyond this many live sessions the ones closest to expiry are revoked. */
  maxSessions: number;
}

export interface PresentedToken {
  userId: string;
  sessionId: string;
  /** SHA-256 of the presented secret. */
  secretHash: Buffer;
  /** The tag the token carries; genuine iff it equals tag(macKey, secretHash). */
  tag: string;
}

export interface RotateRequest extends PresentedToken {
  channel: Channel;
  /**
   * When given, only a session of this client (null: the channel's default) rotates; any other is
   * 'invalid' and stays as it is (RFC 6749 §6: the refresh token must have been issued to the client).
   */
  client?: string | null;
  /** SHA-256 of the candidate successor's secret. Used only if this call rotates. */
  successorHash: Buffer;
  /**
   * The nonce the candidate successor was derived from (`successorSecret(presented secret, nonce)`), 22
   * characters. Kept for the grace window if this call rotates.
   */
  successorNonce: string;
  now: number;
  refreshTtlMs: number;
  graceMs: number;
  userAgent: string | null;
  ip: string | null;
}

export interface IssuedState {
  /** Tag of the (new or unchanged) current token. */
  tag: string;
  expiresAt: number;
  absoluteExpiresAt: number;
  roles: string[];
  /** The session's client, as given to createSession. */
  client: string | null;
  /** When the session was created (ms); the incident switch refuses sessions created before its mark. */
  createdAt: number;
}

export type RotateResult =
  /** The presented token was current: it is now spent and the candidate is current. */
  | ({ status: 'rotated' } & IssuedState)
  /** The presented token was spent within the grace window: the nonce of the successor it already has. */
  | ({ status: 'grace'; successorNonce: string } & IssuedState)
  /** Unknown session, forged tag, wrong channel, expired token or session, disabled user. */
  | { status: 'invalid' }
  /** A genuine but spent token outside the grace window: the session has been revoked. */
  | { status: 'reused' };

export type CreateSessionResult =
  /** `evicted`: live sessions the per-user cap pushed out (revoked in the same atomic step). */
  | ({ status: 'created'; evicted: string[] } & IssuedState)
  | { status: 'user_unavailable' };

/** One call to the store's backend (Redis), for metrics: no key, no argument, only its family. */
export interface StoreCommand {
  /** The store operation: a method name or a script name (`lkRotate`). */
  command: string;
  seconds: number;
  failure: 'timeout' | 'error' | null;
}

export interface Store {
  readonly kind: 'redis' | 'memory';

  /** Reports every call to the backend. A store with no backend to call (memory) need not implement it. */
  observe?(listener: (command: StoreCommand) => void): void;

  /** Adds a user unless the e-mail is taken. */
  createUser(user: UserRecord): Promise<'created' | 'conflict'>;
  findUserByEmail(email: string): Promise<UserRecord | null>;
  getUser(userId: string): Promise<UserRecord | null>;
  setPasswordHash(userId: string, passwordHash: string): Promise<void>;
  setRoles(userId: string, roles: string[]): Promise<void>;
  /** Disabling also revokes every session, as `revokeAllSessions` does, and returns their ids. */
  setDisabled(userId: string, disabled: boolean, now: number): Promise<string[]>;

  /** Starts a session for an existing, enabled user. */
  createSession(session: NewSession): Promise<CreateSessionResult>;
  /** The heart of refresh: one atomic decision, see `RotateResult`. */
  rotate(request: RotateRequest): Promise<RotateResult>;
  /** Revokes the session a genuine token (current or spent) belongs to. True if one was revoked. */
  revokeSessionByToken(token: PresentedToken): Promise<boolean>;
  /** Revokes one of the user's sessions. True if it existed. */
  revokeSession(userId: string, sessionId: string): Promise<boolean>;
  /** Revokes every session of the user and marks `revokedAfter = now`. Returns the ids of the live ones. */
  revokeAllSessions(userId: string, now: number): Promise<string[]>;
  /** The user's live sessions, most recently used first. */
  listSessions(userId: string, now: number): Promise<SessionRecord[]>;

  /** Deny-lists an access token's `jti` until `expiresAt`. */
  denyAccessToken(userId: string, jti: string, expiresAt: number, now: number): Promise<void>;
  /**
   * Is an access token with these claims still good: not deny-listed, session live, user enabled, and not
   * issued before the incident switch's mark for its roles (`revokedGlobally`). The switch is read at
   * every call, never cached, so it holds on every instance at once.
   */
  isAccessTokenActive(
    claims: { userId: string; sessionId: string; jti: string; iat: number; roles?: readonly string[] },
    now: number,
  ): Promise<boolean>;

  /**
   * The incident switch: from now on every session created before `revokedAfter` (ms, a whole second) is
   * revoked — every user's, or with `role` only those of users holding it. Marks only move forward; the
   * mark is kept for `retainMs` (the longest a session lives), after which nothing it could refuse exists.
   */
  revokeEveryone(revokedAfter: number, role: string | null, retainMs: number): Promise<void>;
  /** The incident switch's marks (0 where never pulled). */
  globalRevocation(): Promise<GlobalRevocation>;

  /**
   * Tells verifiers about revocations that are done (Redis: appends to the revocation stream they follow,
   * trimmed to what a live token can still need). A store no verifier can read does nothing.
   */
  publish(facts: RevocationFact[], now: number): Promise<void>;

  /**
   * Resolves once every revocation made so far survives a failover (Redis: held by the configured number
   * of replicas); throws StoreUnavailableError otherwise. A store without replicas resolves at once.
   */
  confirmRevocations(): Promise<void>;
  /** Throws StoreUnavailableError unless the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
