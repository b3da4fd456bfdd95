import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, invalidCredentials } from '../errors.js';
import type { EventBus, LoginFailureCause } from '../events.js';
import type { Revocations } from '../tokens/revocation.js';
import type { Store, UserRecord } from '../store/store.js';
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
  /** Where refused logins are reported (`login_failed`, never with the address). */
  events?: EventBus;
}

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
  async authenticate(email: string, password: string): Promise<UserRecord> {
    const { store, hasher, log } = this.deps;
    const user = await store.findUserByEmail(normalizeEmail(email));
    if (!user) {
      await hasher.verifyDummy(password);
      throw this.refused('wrong_credentials', null);
    }
    const ok = await hasher.verify(user.passwordHash, password);
    if (!ok) throw this.refused('wrong_credentials', user.id);
    if (user.disabled) throw this.refused('disabled', user.id);
    if (hasher.needsRehash(user.passwordHash)) {
      // Parameters were raised since this hash was made; upgrading is best-effort.
      hasher
        .hash(password)
        .then((h) => store.setPasswordHash(user.id, h))
        .catch((err: Error) => log.warn({ userId: user.id, reason: err.message }, 'password rehash failed'));
    }
    return user;
  }

  /** Reports a refused login and returns the one answer every cause gets. */
  private refused(cause: LoginFailureCause, userId: string | null) {
    this.deps.events?.emit({ type: 'login_failed', cause, userId });
    return invalidCredentials();
  }

  /** Disables an account: no new logins, every session and access token revoked at once. Idempotent. */
  async disable(userId: string): Promise<void> {
    const now = this.deps.clock();
    const sessionIds = await this.deps.store.setDisabled(userId, true, now);
    await this.deps.revocations.userRevoked(userId, sessionIds, now, 'disabled');
  }
}

const conflict = () => new ApiError('conflict', 'An account with this e-mail already exists.');
