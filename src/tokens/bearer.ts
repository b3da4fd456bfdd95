import type { Logger } from 'pino';
import { invalidToken } from '../errors.js';
import type { Store } from '../store/store.js';
import { refusalOf, type AccessClaims, type AccessTokens } from './access-token.js';
import { REVOKED, type DecidedTokens } from './decided-tokens.js';

/**
 * One judged access token, for metrics. `where`: latchkey's own Bearer endpoints or GET /verify;
 * `failOpen`: accepted without a revocation check; `checkSeconds`: how long the store lookup took.
 */
export interface TokenDecision {
  where: 'endpoint' | 'verify';
  decision: 'valid' | 'revoked' | 'invalid' | 'expired' | 'unavailable';
  failOpen: boolean;
  checkSeconds?: number;
}

export interface BearerDeps {
  store: Store;
  access: AccessTokens;
  clock: () => number;
  log: Logger;
  onDecision?: (decision: TokenDecision) => void;
  /** Tokens already decided (forward auth's hot path); without it every check goes to the store. */
  decided?: DecidedTokens;
}

/**
 * Bearer authentication for latchkey's own endpoints and forward auth: signature and claims, then the
 * revocation state in the store (session live, token not deny-listed, user enabled). The token arrives
 * already extracted from the request (routes/common.ts `bearerToken`).
 */
export class BearerAuth {
  /** When the store last answered a revocation check (for the bounded fail-open of forward auth). */
  private storeAnsweredAt = 0;

  constructor(private readonly deps: BearerDeps) {}

  /** Signature and claims only, no revocation check; null if they do not hold (logout's optional Bearer). */
  async signedClaims(token: string | undefined): Promise<AccessClaims | null> {
    if (!token) return null;
    return this.deps.access.verify(token, this.deps.clock()).catch(() => null);
  }

  async authenticate(token: string | undefined): Promise<AccessClaims> {
    return (await this.check(token, 0, 'endpoint')).claims;
  }

  /**
   * Like `authenticate`, but while the store is unreachable it may accept a token whose signature holds,
   * for at most `failOpenMs` after the store last answered (0: never).
   */
  async check(
    token: string | undefined,
    failOpenMs: number,
    where: TokenDecision['where'] = 'verify',
  ): Promise<{ claims: AccessClaims; revocationChecked: boolean }> {
    const decided = (decision: TokenDecision['decision'], failOpen = false, checkSeconds?: number) =>
      this.deps.onDecision?.({ where, decision, failOpen, checkSeconds });
    if (!token) {
      decided('invalid');
      throw invalidToken('A Bearer access token is required.');
    }
    const now = this.deps.clock();
    // Remembered decisions serve forward auth, the hot path; latchkey's own endpoints ask the store, so a
    // revocation made anywhere (another instance, a CLI) reaches them at once.
    const memory = where === 'verify' ? this.deps.decided : undefined;
    if (memory) {
      const hit = memory.lookup(token, now);
      if (hit === REVOKED) {
        decided('revoked');
        throw invalidToken();
      }
      if (hit) {
        // Revocation state is known (the stream was read within 2 s): it counts as the store answering,
        // for the bounded fail-open window below.
        this.storeAnsweredAt = now;
        decided('valid');
        return { claims: hit, revocationChecked: true };
      }
    }
    const claims = await this.deps.access.verify(token, now).catch((err: unknown) => {
      decided(refusalOf(err));
      throw err;
    });
    const mark = memory?.mark() ?? -1;
    let active: boolean;
    const started = performance.now();
    try {
      active = await this.deps.store.isAccessTokenActive(
        { userId: claims.sub, sessionId: claims.sid, jti: claims.jti, iat: claims.iat, roles: claims.roles },
        now,
      );
      this.storeAnsweredAt = now;
    } catch (err) {
      if (failOpenMs > 0 && now - this.storeAnsweredAt <= failOpenMs) {
        this.deps.log.warn({ userId: claims.sub, reason: (err as Error).message }, 'store unreachable: FAILING OPEN on a signed token');
        decided('valid', true);
        return { claims, revocationChecked: false };
      }
      decided('unavailable');
      throw err;
    }
    // A revocation applied here while the store was being asked wins over the store's earlier answer.
    if (active && memory?.revoked(claims)) active = false;
    decided(active ? 'valid' : 'revoked', false, (performance.now() - started) / 1000);
    if (!active) throw invalidToken();
    memory?.remember(token, claims, mark);
    return { claims, revocationChecked: true };
  }
}
