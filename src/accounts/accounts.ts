import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, invalidCredentials } from '../errors.js';
import type { EventBus, LoginFailure } from '../events.js';
import type { Revocations } from '../tokens/revocation.js';
import type { Store, UserRecord } from '../store/store.js';
import type { Throttles } from '../throttle.js';
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
  clock: () => number;
  log: Logger;
  /** Per-account and global login throttles, checked before any password hash. */
  throttles?: Pick<Throttles, 'login'>;
  events?: EventBus;
}

/** Who is trying to log in, for the record of failed attempts; `log` carries the request id. */
export interface LoginContext {
  ip: string | null;
  userAgent: string | null;
  log?: { warn(fields: object, message: string): void };
}

/** Names one address in events and logs without writing it down. */
export const accountHandle = (normalizedEmail: string): string =>
  createHash('sha256').update(`latchkey account\0${normalizedEmail}`).digest('base64url').slice(0, 22);

/**
 * Accounts own credentials: who a user is, their password, whether they may log in. Starting a session
 * for an authenticated user is the token issuer's job; revoking what a change of account state kills is
 * the revocations' job.
 */
export class Accounts {
  constructor(private readonly deps: AccountsDeps) {}

  async register(email: string, password: string, roles: string[] = []): Promise<{ id: string; email: string }> {
    const { store, hasher, clock } = this.deps;
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
    return { id, email: normalized };
  }

  /**
   * Unknown e-mail, wrong password and disabled account are indistinguishable: same error, and an argon2
   * verification in every case — against a dummy hash when there is no user, awaited before answering so
   * the response time does not tell which addresses have accounts.
   */
  async authenticate(email: string, password: string, ctx: LoginContext = { ip: null, userAgent: null }): Promise<UserRecord> {
    const { store, hasher, log } = this.deps;
    const normalized = normalizeEmail(email);
    const failed = (reason: LoginFailure, userId: string | null) => this.loginFailed(normalized, reason, userId, ctx);
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
        .catch((err: Error) => log.warn({ userId: user.id, reason: err.message }, 'password rehash failed'));
    }
    return user;
  }

  private loginFailed(normalizedEmail: string, reason: LoginFailure, userId: string | null, ctx: LoginContext): void {
    const account = accountHandle(normalizedEmail);
    (ctx.log ?? this.deps.log).warn(
      { event: 'login_failed', reason, userId, account, ip: ctx.ip, userAgent: ctx.userAgent },
      'security: login refused',
    );
    this.deps.events?.emit({ type: 'login_failed', userId, account, reason, ip: ctx.ip, userAgent: ctx.userAgent });
  }

  /** Disables an account: no new logins, every session and access token revoked at once. Idempotent. */
  async disable(userId: string): Promise<void> {
    const now = this.deps.clock();
    const sessionIds = await this.deps.store.setDisabled(userId, true, now);
    await this.deps.revocations.userRevoked(userId, sessionIds, now, 'disabled');
  }
}

const conflict = () => new ApiError('conflict', 'An account with this e-mail already exists.');
