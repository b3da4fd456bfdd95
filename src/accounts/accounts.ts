import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ActionContext } from '../audit/context.js';
import { ApiError, invalidCredentials } from '../errors.js';
import type { EventBus, LoginFailure } from '../events.js';
import type { Revocations } from '../tokens/revocation.js';
import type { Store, UserRecord } from '../store/store.js';
import type { Throttles } from '../throttle.js';
import { checkPasswordPolicy } from './password-policy.js';
import type { PasswordHasher } from './passwords.js';

/**
 * One account per address however it is typed: trim, Unicode NFKC (so full-width and other compatibility
 * forms fold to their plain letters), then lower-case.
 */
export function normalizeEmail(raw: string): string {
  return raw.trim().normalize('NFKC').toLowerCase();
}

export const newUserId = (): string => randomUUID();

export interface AccountsDeps {
  store: Store;
  hasher: PasswordHasher;
  revocations: Revocations;
  events: EventBus;
  /** Keyed hash of an address that has no account, for the audit trail (src/audit/audit.ts). */
  emailHash: (email: string) => string | undefined;
  clock: () => number;
  log: Logger;
  /** Per-account and global login throttles, checked before any password hash. */
  throttles?: Pick<Throttles, 'login'>;
}

/** Where a refused login is logged: the request's logger, which carries the request id. */
export interface LoginLog {
  warn(fields: object, message: string): void;
}

/**
 * Accounts own credentials: who a user is, their password, whether they may log in, their roles. Starting
 * a session for an authenticated user is the token issuer's job; revoking what a change of account state
 * kills is the revocations' job. Whatever changes something takes the action context of whoever acts,
 * for the audit trail, and hands it on to the revocations it causes.
 */
export class Accounts {
  constructor(private readonly deps: AccountsDeps) {}

  /** Creates an account (registration, or an operator with roles). The password must pass the policy. */
  async register(email: string, password: string, context: ActionContext, roles: string[] = []): Promise<{ id: string; email: string }> {
    const { store, hasher, clock } = this.deps;
    checkPasswordPolicy(password, 'password');
    const normalized = normalizeEmail(email);
    // Cheap look-up first, so a taken address does not cost a hash; createUser still decides atomically.
    if (await store.findUserByEmail(normalized)) throw conflict();
    const id = newUserId();
    const passwordHash = await hasher.hash(password);
    const result = await store.createUser({
      id,
      email: normalized,
      passwordHash,
      roles,
      disabled: false,
      createdAt: clock(),
      revokedAfter: 0,
    });
    if (result === 'conflict') throw conflict();
    this.deps.events.emit({ type: 'account_created', userId: id, roles }, context);
    return { id, email: normalized };
  }

  /**
   * Unknown e-mail, wrong password and disabled account are indistinguishable: same error, and an argon2
   * verification in every case — against a dummy hash when there is no user, awaited before answering so
   * the response time does not tell which addresses have accounts.
   */
  async authenticate(email: string, password: string, context: ActionContext, log: LoginLog = this.deps.log): Promise<UserRecord> {
    const { store, hasher } = this.deps;
    const normalized = normalizeEmail(email);
    const failed = (reason: LoginFailure, userId: string | null) => this.loginFailed(normalized, reason, userId, context, log);
    // Before any look-up or hash, and whether or not the account exists: a throttled correct password
    // is refused like any other attempt, and the answer does not tell which addresses have accounts.
    let succeeded: (() => Promise<void>) | undefined;
    try {
      succeeded = await this.deps.throttles?.login(normalized);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'rate_limited') failed('throttled', null);
      throw err;
    }
    const user = await store.findUserByEmail(normalized);
    if (!user) {
      await hasher.verifyDummy(password);
      failed('unknown_account', null);
      throw invalidCredentials();
    }
    const ok = await hasher.verify(user.passwordHash, password);
    if (!ok || user.disabled) {
      failed(ok ? 'disabled' : 'wrong_password', user.id);
      throw invalidCredentials();
    }
    await succeeded?.();
    if (hasher.needsRehash(user.passwordHash)) {
      // Parameters were raised since this hash was made; upgrading is best-effort.
      hasher
        .hash(password)
        .then((h) => store.setPasswordHash(user.id, h))
        .catch((err: Error) => this.deps.log.warn({ userId: user.id, reason: err.message }, 'password rehash failed'));
    }
    return user;
  }

  /**
   * A refused login, logged (with the request id, IP and user agent) and emitted. An address without an
   * account appears only as a keyed hash, never in clear.
   */
  private loginFailed(normalizedEmail: string, reason: LoginFailure, userId: string | null, context: ActionContext, log: LoginLog): void {
    const emailHash = userId ? undefined : this.deps.emailHash(normalizedEmail);
    const { ip, userAgent } = context;
    log.warn({ event: 'login_failed', reason, userId, emailHash, ip, userAgent }, 'security: login refused');
    this.deps.events.emit({ type: 'login_failed', userId, emailHash, reason, ip, userAgent }, context);
  }

  /** The account, or 404. */
  async get(userId: string): Promise<UserRecord> {
    const user = await this.deps.store.getUser(userId);
    if (!user) throw new ApiError('not_found', 'No such user.');
    return user;
  }

  async findByEmail(email: string): Promise<UserRecord | null> {
    return this.deps.store.findUserByEmail(normalizeEmail(email));
  }

  /** Disables an account: no new logins, every session and access token revoked at once. Idempotent. */
  async disable(userId: string, context: ActionContext): Promise<void> {
    await this.get(userId);
    const now = this.deps.clock();
    const sessionIds = await this.deps.store.setDisabled(userId, true, now);
    this.deps.events.emit({ type: 'account_disabled', userId }, context);
    await this.deps.revocations.userRevoked(userId, sessionIds, now, 'disabled', context);
  }

  /** Lets the account log in again; sessions revoked by the disable stay revoked. Idempotent. */
  async enable(userId: string, context: ActionContext): Promise<void> {
    await this.get(userId);
    await this.deps.store.setDisabled(userId, false, this.deps.clock());
    this.deps.events.emit({ type: 'account_enabled', userId }, context);
  }

  /**
   * New roles reach access tokens at the next refresh (the store reads them at every rotation); with
   * `revoke`, every session is revoked at once, so no token with the old roles stays usable.
   */
  async setRoles(userId: string, roles: string[], revoke: boolean, context: ActionContext): Promise<void> {
    const user = await this.get(userId);
    const unique = [...new Set(roles)];
    await this.deps.store.setRoles(userId, unique);
    this.deps.events.emit({ type: 'roles_changed', userId, roles: unique, previous: user.roles }, context);
    if (revoke) await this.deps.revocations.revokeUser(userId, 'roles_changed', context);
  }

  /**
   * The owner changes their password: the current one is checked again (a wrong one is a failed login in
   * the audit trail) and every session is revoked; the caller starts a fresh session for itself.
   */
  async changePassword(userId: string, current: string, next: string, context: ActionContext): Promise<UserRecord> {
    const { store, hasher, events } = this.deps;
    const user = await this.get(userId);
    const ok = await hasher.verify(user.passwordHash, current);
    if (!ok || user.disabled) {
      events.emit({ type: 'login_failed', userId, reason: ok ? 'disabled' : 'wrong_current_password' }, context);
      throw invalidCredentials();
    }
    checkPasswordPolicy(next, 'new_password');
    await store.setPasswordHash(userId, await hasher.hash(next));
    // A reset link mailed earlier must not undo the change.
    await store.deleteResetToken(userId);
    events.emit({ type: 'password_changed', userId }, context);
    await this.deps.revocations.revokeUser(userId, 'password_changed', context);
    return user;
  }

  /** Sets a password after a reset token was spent, and revokes every session. */
  async setPasswordAfterReset(userId: string, next: string, context: ActionContext): Promise<void> {
    await this.deps.store.setPasswordHash(userId, await this.deps.hasher.hash(next));
    this.deps.events.emit({ type: 'password_reset_completed', userId }, context);
    await this.deps.revocations.revokeUser(userId, 'password_reset', context);
  }
}

const conflict = () => new ApiError('conflict', 'An account with this e-mail already exists.');
