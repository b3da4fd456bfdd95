/**
 * The part of the example a single-page app would copy: how a page on another origin (of the same site)
 * talks to latchkey.
 *
 * - The refresh token lives in latchkey's HttpOnly cookie: this code never sees it. Every call that must
 *   carry or replace the cookie (login, refresh, logout, logout-all) uses `credentials: 'include'`.
 * - The access token lives in this object only: not in localStorage, sessionStorage or a readable
 *   cookie, where any script injected into the page, or a browser extension, could pick it up later. A
 *   reload loses it, and `restore()` gets a new one through the cookie.
 * - It is refreshed a minute before it expires, when the page becomes visible again after a background
 *   timer was throttled, and once after a 401 from an API.
 * - Tabs do not coordinate: two tabs refreshing with the same cookie at once both get the same new one,
 *   through latchkey's grace window (README, "Security model").
 */

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_expires_in: number;
  session_id: string;
}

export interface SessionInfo {
  id: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

/** An answer from latchkey that is neither a success nor the end of the session. */
export class LatchkeyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
    /** Seconds, from Retry-After on 429 and 503. */
    readonly retryAfter?: number,
  ) {
    super(description);
    this.name = 'LatchkeyError';
  }
}

interface AccessToken {
  token: string;
  /** Page clock, ms. */
  expiresAt: number;
  sessionId: string;
}

/** Seconds before expiry at which the access token is renewed: a minute, or a fifth of short lifetimes. */
const refreshMargin = (expiresIn: number) => Math.min(60, expiresIn / 5);

export class LatchkeyClient {
  private access: AccessToken | null = null;
  private inflight: Promise<boolean> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<() => void>();
  /** Successful refreshes in this page, for the UI. */
  refreshes = 0;

  constructor(private readonly baseUrl: string) {
    document.addEventListener('visibilitychange', () => {
      // Background tabs throttle timers; catch up as soon as the user looks again.
      if (document.visibilityState === 'visible' && this.access && this.expiresSoon()) void this.refresh().catch(() => undefined);
    });
  }

  get signedIn(): boolean {
    return this.access !== null;
  }

  get sessionId(): string | undefined {
    return this.access?.sessionId;
  }

  /** When the access token expires, on the page's clock (ms). */
  get expiresAt(): number | undefined {
    return this.access?.expiresAt;
  }

  /** Called whenever the signed-in state or the access token changes. */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  async register(email: string, password: string): Promise<void> {
    await this.call('/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
  }

  async login(email: string, password: string): Promise<void> {
    const res = await this.call('/login', {
      method: 'POST',
      // The answer sets the refresh cookie: a cross-origin answer may only do that with credentials.
      credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password, client: 'browser' }),
    });
    this.accept((await res.json()) as TokenResponse);
  }

  /** After a page load: the cookie, if the browser still holds a live one, signs the user back in. */
  restore(): Promise<boolean> {
    return this.refresh();
  }

  /**
   * Trades the cookie for a new access token (and the cookie for a new one). Resolves to false when the
   * session is over: the browser holds no cookie (400) or latchkey refused it (401: expired, logged out,
   * revoked elsewhere, or reused). Throws a LatchkeyError on a temporary failure (429, 503), when the user
   * is still signed in and should simply retry. Concurrent callers in this page share one request.
   */
  refresh(): Promise<boolean> {
    this.inflight ??= this.doRefresh().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async doRefresh(): Promise<boolean> {
    // No body and no content type: a "simple" CORS request, sent without a preflight.
    const res = await fetch(`${this.baseUrl}/refresh`, { method: 'POST', credentials: 'include' });
    if (res.ok) {
      this.refreshes += 1;
      this.accept((await res.json()) as TokenResponse);
      return true;
    }
    if (res.status === 400 || res.status === 401) {
      this.forget();
      return false;
    }
    const error = await toError(res);
    if (error.retryAfter !== undefined && this.access) this.schedule(error.retryAfter * 1000);
    throw error;
  }

  /**
   * `fetch` for an API protected by latchkey: adds the access token, renews it first when it is about to
   * expire, and after a 401 renews it once and retries. A 401 that survives that means the session is over.
   */
  async fetch(input: string, init: RequestInit = {}): Promise<Response> {
    if (this.access && this.expiresSoon()) await this.refresh();
    const send = () => fetch(input, { ...init, headers: { ...headersOf(init), ...this.authorization() } });
    const res = await send();
    if (res.status !== 401 || !this.access) return res;
    return (await this.refresh()) ? send() : res;
  }

  async sessions(): Promise<SessionInfo[]> {
    const res = await this.fetch(`${this.baseUrl}/sessions`);
    if (!res.ok) throw await toError(res);
    return (await res.json()) as SessionInfo[];
  }

  async revokeSession(id: string): Promise<void> {
    const res = await this.fetch(`${this.baseUrl}/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (!res.ok) throw await toError(res);
    if (id === this.access?.sessionId) this.forget();
  }

  /** Ends this session: latchkey revokes it, deny-lists the access token and clears the cookie. */
  async logout(): Promise<void> {
    try {
      await this.call('/logout', { method: 'POST', credentials: 'include', headers: this.authorization() });
    } finally {
      this.forget();
    }
  }

  /** Ends every session of the user, in every browser and app. */
  async logoutEverywhere(): Promise<void> {
    await this.call('/logout-all', { method: 'POST', credentials: 'include', headers: this.authorization() });
    this.forget();
  }

  private async call(path: string, init: RequestInit): Promise<Response> {
    const res = await fetch(`${this.baseUrl}${path}`, init);
    if (!res.ok) throw await toError(res);
    return res;
  }

  private accept(tokens: TokenResponse): void {
    this.access = { token: tokens.access_token, expiresAt: Date.now() + tokens.expires_in * 1000, sessionId: tokens.session_id };
    this.schedule((tokens.expires_in - refreshMargin(tokens.expires_in)) * 1000);
    this.changed();
  }

  private forget(): void {
    clearTimeout(this.timer);
    this.access = null;
    this.changed();
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh().catch(() => undefined), Math.max(0, delayMs));
  }

  private expiresSoon(): boolean {
    const a = this.access;
    return a !== null && a.expiresAt - Date.now() < 30_000;
  }

  private authorization(): Record<string, string> {
    return this.access ? { authorization: `Bearer ${this.access.token}` } : {};
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

function headersOf(init: RequestInit): Record<string, string> {
  return Object.fromEntries(new Headers(init.headers).entries());
}

async function toError(res: Response): Promise<LatchkeyError> {
  const body = (await res.json().catch(() => ({}))) as { error?: string; error_description?: string };
  const retryAfter = res.headers.get('retry-after');
  return new LatchkeyError(
    res.status,
    body.error ?? 'http_error',
    body.error_description ?? `HTTP ${res.status}`,
    retryAfter === null ? undefined : Number(retryAfter),
  );
}
