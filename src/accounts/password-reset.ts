import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ActionContext } from '../audit/context.js';
import { ApiError, unavailable } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Mailer } from '../mail/mailer.js';
import type { Store, UserRecord } from '../store/store.js';
import { randomToken } from '../tokens/random.js';
import { normalizeEmail, type Accounts } from './accounts.js';
import { checkPasswordPolicy } from './password-policy.js';

/**
 * Reset-token format: `lk_pr_<user id>.<secret>`. The prefix lets secret scanners spot a leaked one; the
 * user id locates it; the secret is 256 random bits and only its SHA-256 is stored, so a dump of the store
 * yields no usable token.
 */
export const RESET_TOKEN_PREFIX = 'lk_pr_';
const TOKEN_RE = /^lk_pr_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;
/** Wrong guesses a pending token survives (with a user id known to the guesser). */
export const RESET_MAX_FAILURES = 5;
/** Reset mails being prepared or sent at once; beyond that requests are answered alike and dropped. */
const MAX_IN_FLIGHT = 100;

export interface PasswordResetsDeps {
  store: Store;
  accounts: Accounts;
  events: EventBus;
  emailHash: (email: string) => string | undefined;
  /** Null: no SMTP configured. */
  mailer: Mailer | null;
  /** Production without SMTP refuses resets (503) rather than pretend to send mail. */
  refuseWithoutMail: boolean;
  ttlSeconds: number;
  /** The link template; `{token}` is replaced. */
  url: string;
  clock: () => number;
  log: Logger;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Forgotten passwords (openapi.yaml `POST /password/forgot`, `POST /password/reset`). */
export class PasswordResets {
  private inFlight = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly deps: PasswordResetsDeps) {}

  get mailEnabled(): boolean {
    return this.deps.mailer !== null;
  }

  /**
   * Someone asked for a reset of `email`. The caller answers 202 at once whatever happens: the same work
   * runs before the answer for every address (one look-up, one token drawn), and the token is stored and
   * mailed afterwards, so neither the answer nor its timing tells whether the address has an account.
   */
  async request(email: string, context: ActionContext): Promise<void> {
    this.requireMail();
    const normalized = normalizeEmail(email);
    const user = await this.deps.store.findUserByEmail(normalized);
    const secret = randomToken(32);
    if (!user || user.disabled) {
      this.deps.events.emit(
        { type: 'password_reset_requested', userId: user?.id ?? null, ...(user ? {} : { emailHash: this.deps.emailHash(normalized) }) },
        context,
      );
      return;
    }
    this.deps.events.emit({ type: 'password_reset_requested', userId: user.id }, context);
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.deps.log.warn({ userId: user.id }, 'too many reset mails in flight; request dropped');
      return;
    }
    this.background(this.deliver(user, secret));
  }

  /** An operator starts a reset for a user: the mail is sent before this resolves. */
  async start(user: UserRecord, context: ActionContext): Promise<void> {
    this.requireMail();
    if (user.disabled) throw new ApiError('conflict', 'The account is disabled; enable it first.');
    this.deps.events.emit({ type: 'password_reset_requested', userId: user.id }, context);
    await this.deliver(user, randomToken(32));
  }

  /**
   * Spends a reset token and sets the new password; every session of the user is revoked. A bad, spent,
   * expired or guessed-out token, and one for a disabled account, all fail alike.
   */
  async complete(token: string, newPassword: string, context: ActionContext): Promise<void> {
    checkPasswordPolicy(newPassword, 'new_password');
    const m = TOKEN_RE.exec(token);
    if (!m) throw invalidResetToken();
    const [, userId, secret] = m as unknown as [string, string, string];
    const { store, clock, events } = this.deps;
    const user = await store.getUser(userId);
    const spent = await store.consumeResetToken(userId, sha256(secret), clock(), RESET_MAX_FAILURES);
    if (!spent || !user || user.disabled) {
      events.emit({ type: 'password_reset_failed', userId: user ? userId : null }, context);
      throw invalidResetToken();
    }
    await this.deps.accounts.setPasswordAfterReset(userId, newPassword, context);
  }

  /** Resolves once background deliveries are done (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private requireMail(): void {
    if (!this.deps.mailer && this.deps.refuseWithoutMail) throw unavailable();
  }

  private background(work: Promise<void>): void {
    this.inFlight++;
    const done = work
      .catch((err: Error) => this.deps.log.error({ reason: err.message }, 'password reset mail not sent'))
      .finally(() => {
        this.inFlight--;
        this.pending.delete(done);
      });
    this.pending.add(done);
  }

  /** Stores the token's hash (replacing an earlier token) and mails the link. */
  private async deliver(user: UserRecord, secret: string): Promise<void> {
    const { store, clock, mailer, ttlSeconds } = this.deps;
    const now = clock();
    await store.setResetToken(user.id, sha256(secret), now + ttlSeconds * 1000, now);
    if (!mailer) {
      this.deps.log.warn({ userId: user.id }, 'password reset requested but reset mail is off (no LATCHKEY_SMTP_URL)');
      return;
    }
    const token = `${RESET_TOKEN_PREFIX}${user.id}.${secret}`;
    const link = this.deps.url.replace('{token}', encodeURIComponent(token));
    const minutes = Math.round(ttlSeconds / 60);
    await mailer.send({
      to: user.email,
      subject: 'Reset your password',
      text:
        `Someone asked to reset the password of your account.\n\n` +
        `To choose a new password, open this link within ${minutes} minutes:\n\n${link}\n\n` +
        `It works once. If you did not ask for this, ignore this message: your password stays as it is.\n`,
    });
    this.deps.log.info({ userId: user.id }, 'password reset mail sent');
  }
}

const invalidResetToken = () => new ApiError('invalid_grant', 'The reset token is invalid or expired.');
