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
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

/** A named fixed-window counter: `points` per `durationSeconds` for each key. */
export interface RateLimiterOptions {
  /** Becomes part of every counter's key; one name per throttle. */
  name: string;
  points: number;
  durationSeconds: number;
}

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
  /** When a session was last started for the user (ms), i.e. the last login; absent = never. */
  lastLoginAt?: number;
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
  /** How the session's refresh tokens travel: a cookie (browser) or the body (native). */
  channel: Channel;
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
   * characters. Kept until the successor is next rotated (or the session ends) if this call rotates.
   */
  successorNonce: string;
  now: number;
  refreshTtlMs: number;
  /** The grace window; 0 turns every grace off, late retries included. */
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
  /**
   * The presented token is the one spent last and its successor has never been presented: the nonce of
   * that successor. Within `graceMs` of the rotation (two tabs, a quick retry), or later (`late`: a retry
   * after a lost reply) unless this token had itself been handed out late — then it is reuse.
   */
  | ({ status: 'grace'; successorNonce: string; late: boolean } & IssuedState)
  /** Unknown session, forged tag, wrong channel, expired token or session, disabled user. */
  | { status: 'invalid' }
  /** A genuine spent token that gets no grace (see above): the session has been revoked. */
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

/** An admin API key as stored: only a SHA-256 of its secret, never the key itself. */
export interface AdminKeyRecord {
  /** Public identifier, part of the key (`lk_ak_<id>.<secret>`). */
  id: string;
  /** Unique among live keys; shown in the audit trail as the actor. */
  name: string;
  /** SHA-256 of the secret, base64url. */
  secretHash: string;
  createdAt: number;
  /** Epoch ms after which the key is refused; null = no expiry. */
  expiresAt: number | null;
  /** Who created it (an audit actor, e.g. `cli` or `user:<id>`). */
  createdBy: string;
}

/**
 * One security event in the audit trail. Never a password, a token or, for an unknown account, a clear
 * e-mail address (an HMAC of it instead).
 */
export interface AuditEntry {
  /** Epoch ms. */
  time: number;
  type: string;
  /** The account the event is about, when there is one. */
  userId: string | null;
  /** Who did it: `user:<id>`, `admin:<id>`, `key:<name>`, `cli` or `system`. */
  actor: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

/** An audit entry with its position in the trail: ids grow with time, and are the paging cursor. */
export interface StoredAuditEntry extends AuditEntry {
  id: string;
}

export interface AuditQuery {
  userId?: string;
  type?: string;
  /** Entries to return at most. */
  limit: number;
  /** Newest first, strictly older than this id; absent = from the newest. */
  before?: string;
  /** Entries to examine at most in one call (filters may skip many); paging resumes from `next`. */
  scanLimit: number;
}

export interface AuditRetention {
  /** Entries older than this (ms) are dropped. */
  maxAgeMs: number;
  /** At most about this many entries are kept. */
  maxEntries: number;
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

  /** Starts a session for an existing, enabled user, and records it as the user's last login. */
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
   * Users in creation order, `limit` at a time from `cursor` (opaque; absent = the start). `next` is null
   * at the end.
   */
  listUsers(cursor: string | undefined, limit: number): Promise<{ users: UserRecord[]; next: string | null }>;

  /**
   * Keeps the hash of a password-reset token for the user, replacing any earlier one; it is gone at
   * `expiresAt`.
   */
  setResetToken(userId: string, secretHash: Buffer, expiresAt: number, now: number): Promise<void>;
  /**
   * Spends the user's reset token if `secretHash` matches (true), atomically: a token works once. A wrong
   * hash counts a failure; after `maxFailures` of them the token is gone.
   */
  consumeResetToken(userId: string, secretHash: Buffer, now: number, maxFailures: number): Promise<boolean>;
  deleteResetToken(userId: string): Promise<void>;

  /** Adds an admin API key unless its id exists. */
  putAdminKey(key: AdminKeyRecord): Promise<void>;
  getAdminKey(id: string): Promise<AdminKeyRecord | null>;
  /** Every admin key, expired ones included until they are deleted. */
  listAdminKeys(): Promise<AdminKeyRecord[]>;
  /** True if the key existed. */
  deleteAdminKey(id: string): Promise<boolean>;

  /** Appends to the audit trail, dropping what is beyond the retention. Returns the entry's id. */
  appendAudit(entry: AuditEntry, retention: AuditRetention): Promise<string>;
  /** Newest first, filtered; `next` resumes the scan (null once the oldest entry was examined). */
  readAudit(query: AuditQuery): Promise<{ entries: StoredAuditEntry[]; next: string | null }>;
  /** Oldest first, strictly newer than `after` (absent = from the oldest): for following the trail. */
  readAuditSince(after: string | undefined, limit: number): Promise<StoredAuditEntry[]>;
  /**
   * A random key shared by every instance, created on first use, for keyed hashes in the audit trail (an
   * unknown e-mail address is recorded as an HMAC, never in clear).
   */
  auditSecret(): Promise<Buffer>;

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
  /**
   * A throttle counter kept where this store keeps its data, so every instance sharing the store shares the
   * budget (Redis: rate-limiter-flexible's RateLimiterRedis on the store's own connection; memory: in
   * process). Windows run on the store's clock, not on `now`. A counter that cannot be reached rejects
   * with an Error (never a RateLimiterRes): callers fail closed.
   */
  rateLimiter(options: RateLimiterOptions): RateLimiterAbstract;
  /** Throws StoreUnavailableError unless the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
