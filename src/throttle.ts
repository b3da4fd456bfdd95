import { createHash } from 'node:crypto';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from './config.js';
import { ApiError, StoreUnavailableError } from './errors.js';
import type { Store } from './store/store.js';

/**
 * Throttles (README "Security model"). The counters live in the store, so N instances share one
 * budget instead of granting N of them. Every check runs before the work it protects (argon2, a rotation).
 *
 * - per client IP: login, registration and password attempts per minute; refreshes per minute
 * - per account: failed logins per normalised e-mail per window. A window is fixed from its first failure
 *   and then simply expires, so an account is never locked for longer than one window, however many
 *   attempts arrive; a successful login gives its point back, so only failures count.
 * - global: login attempts per second across every instance and client (credential stuffing spread over
 *   many addresses and accounts)
 * - per session: refreshes per minute (a client stuck in a refresh loop)
 *
 * A throttled request gets 429 `rate_limited` with Retry-After, whatever the outcome would have been: a
 * correct password is refused the same way. A counter the store cannot reach fails closed (503): the
 * work behind it would need the store anyway, and failing open would hand an attacker an unmetered
 * window exactly when Redis struggles.
 */
export class Throttles {
  private readonly ip: RateLimiterAbstract | null;
  private readonly account: RateLimiterAbstract | null;
  private readonly global: RateLimiterAbstract | null;
  private readonly refreshIp: RateLimiterAbstract | null;
  private readonly refreshSession: RateLimiterAbstract | null;

  constructor(store: Store, config: Pick<Config, 'loginRateLimit' | 'throttle'>) {
    const make = (name: string, points: number, durationSeconds: number) =>
      points > 0 ? store.rateLimiter({ name, points, durationSeconds }) : null;
    const t = config.throttle;
    this.ip = make('ip', config.loginRateLimit, 60);
    this.account = make('acct', t.account, t.accountWindow);
    this.global = make('global', t.globalLogin, 1);
    this.refreshIp = make('rip', t.refreshIp, 60);
    this.refreshSession = make('rsid', t.refreshSession, 60);
  }

  /** A login, registration or password attempt from this address. */
  attempt(ip: string): Promise<void> {
    return consume(this.ip, ip);
  }

  /**
   * A password check for this account (normalised e-mail) is about to run. Resolves to a function that
   * gives the point back when the password was right.
   */
  async login(normalizedEmail: string): Promise<() => Promise<void>> {
    // The account first: a flood against one account must not also eat the global budget.
    const key = createHash('sha256').update(normalizedEmail).digest('base64url');
    await consume(this.account, key);
    await consume(this.global, 'all');
    const account = this.account;
    return async () => {
      await account?.reward(key, 1).catch(() => undefined);
    };
  }

  /** Both counters at once: one round trip with auto-pipelining, not two before every rotation. */
  async refresh(ip: string, sessionId: string | null): Promise<void> {
    await Promise.all([consume(this.refreshIp, ip), sessionId ? consume(this.refreshSession, sessionId) : undefined]);
  }
}

async function consume(limiter: RateLimiterAbstract | null, key: string): Promise<void> {
  if (!limiter) return;
  try {
    await limiter.consume(key, 1);
  } catch (err) {
    if (err instanceof RateLimiterRes) throw rateLimited(err.msBeforeNext);
    throw new StoreUnavailableError(`throttle unavailable: ${(err as Error).message}`, { cause: err });
  }
}

export const rateLimited = (msBeforeNext: number) =>
  new ApiError('rate_limited', 'Too many attempts; retry later.', {
    'retry-after': String(Math.max(1, Math.ceil(msBeforeNext / 1000))),
  });
