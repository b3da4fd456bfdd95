import type { Logger } from 'pino';

/**
 * Security and revocation events. Subscribers (metrics, the audit trail, tests) react to them; the code
 * that emits an event never depends on who listens. An event never carries a token, a password or, for
 * an unknown account, a clear e-mail address.
 */
export type AuthEvent =
  | { type: 'refresh_token_reused'; userId: string; sessionId: string; ip: string | null }
  | { type: 'session_revoked'; userId: string; sessionId: string; reason: SessionRevokeReason }
  | { type: 'user_sessions_revoked'; userId: string; revokedAfter: number; sessionIds: string[]; reason: UserRevokeReason }
  | { type: 'access_token_denied'; userId: string; jti: string; exp: number }
  /** A refused login. `userId` only when the address has an account; never the address itself. */
  | { type: 'login_failed'; cause: LoginFailureCause; userId: string | null }
  /**
   * The incident switch: every session created before `revokedAfter` (ms) is revoked — every user's, or
   * only those of users holding `role`.
   */
  | { type: 'everyone_revoked'; revokedAfter: number; role: string | null };

export type SessionRevokeReason = 'logout' | 'user_request' | 'session_cap' | 'admin';
export type UserRevokeReason = 'logout_all' | 'disabled' | 'password_changed' | 'password_reset' | 'admin';

/** Why a login was refused. An unknown address counts as `wrong_credentials`, as it answers the same. */
export type LoginFailureCause = 'wrong_credentials' | 'disabled' | 'throttled';

export type AuthEventListener = (event: AuthEvent) => void;

/** Fan-out of events to subscribers. A failing subscriber is logged and never breaks the request. */
export class EventBus {
  private readonly listeners: AuthEventListener[] = [];

  constructor(private readonly log: Logger) {}

  on(listener: AuthEventListener): void {
    this.listeners.push(listener);
  }

  emit(event: AuthEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ reason: (err as Error).message, event: event.type }, 'event listener failed');
      }
    }
  }
}
