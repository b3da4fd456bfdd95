import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Config } from '../config.js';
import type { SessionRecord } from '../store/store.js';
import { ApiError } from '../errors.js';
import type { ActionContext } from '../audit/context.js';
import type { EventBus } from '../events.js';
import type { Throttles } from '../throttle.js';
import type { IssuedTokens } from '../tokens/issuer.js';

/**
 * Parses input with a zod schema; a violation is a 400 that names every bad field. Nothing the client
 * sent is echoed unless it is a plain field name: an answer must not carry markup or text an attacker
 * chose (a reflected string in an error page or a log viewer).
 */
export function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = issue.path.map(String).map(safeName).join('.') || 'body';
    if (issue.code === 'unrecognized_keys') {
      const names = issue.keys.map(safeName);
      return `${where}: unknown field${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
    }
    return `${where}: ${issue.message}`;
  });
  throw new ApiError('invalid_request', problems.join('; '));
}

/** A field name fit to quote in an error: plain ASCII, or a stand-in (errors never echo raw input). */
export const safeName = (name: string) => (/^[A-Za-z0-9_-]{1,40}$/.test(name) ? name : '(a field name that is not plain ASCII)');

/**
 * Text a person typed must be clean Unicode: no control characters (NUL, escapes), no format characters
 * (bidi overrides like U+202E, zero-width characters, a BOM), no lone surrogates (which cannot be encoded
 * in UTF-8 and would compare unequal to themselves once stored), no unassigned or private-use code points.
 */
const UNCLEAN_TEXT = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}]/u;
/** Passwords may hold any character a keyboard or a password manager produces, but never a control character or a lone surrogate. */
const UNCLEAN_SECRET = /[\p{Cc}\p{Cs}]/u;

export const cleanText = (value: string) => !UNCLEAN_TEXT.test(value);
export const cleanSecret = (value: string) => !UNCLEAN_SECRET.test(value);
export const maxBytes = (max: number) => (value: string) => Buffer.byteLength(value, 'utf8') <= max;

/**
 * The action context of a request to the public API: its address, user agent and id, for the audit trail
 * and the session record. No actor: an entry names the user it is about (or `system`). Built once by the
 * handler and passed to every service call that may emit an event.
 */
export const clientContext = (request: FastifyRequest): ActionContext => ({
  ip: request.ip || null,
  userAgent: truncateBytes(request.headers['user-agent'] ?? '', 128) || null,
  requestId: String(request.id),
});

/** At most `max` UTF-8 bytes, cut between characters. */
function truncateBytes(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > max) break;
    out += ch;
  }
  return out;
}

/**
 * Cookie-authenticated and cookie-setting requests must come from an allowed origin (CSRF defence in depth
 * on top of SameSite=Strict). Browsers send Origin on every POST; its absence is refused too. A request the
 * browser itself marks as cross-site (Fetch Metadata, `Sec-Fetch-Site`) is refused even from an allowed
 * origin: an allowed app on another site never needs the cookie, which SameSite=Strict withholds anyway.
 */
export function requireAllowedOrigin(request: FastifyRequest, config: Config): void {
  const origin = request.headers.origin;
  if (!origin || !config.allowedOrigins.includes(origin) || request.headers['sec-fetch-site'] === 'cross-site') {
    throw new ApiError('forbidden', 'This origin may not use cookie-based sessions.');
  }
}

/**
 * A request carrying an `Origin` comes from a browser (browsers send one with every POST, `null` included),
 * and a browser never receives a refresh token in a body, where page scripts could read it (README
 * "Browser (SPA) flow"). It is refused before anything is issued or spent, rather than silently switched to a
 * cookie, so the client learns to ask for `client: "browser"`. Hybrid apps whose web view sends an
 * Origin are let through by LATCHKEY_NATIVE_ORIGINS.
 */
export function refuseBodyTokensToBrowsers(request: FastifyRequest, config: Config, problem: string): void {
  const origin = request.headers.origin;
  if (origin !== undefined && !config.nativeOrigins.includes(origin)) throw new ApiError('invalid_request', problem);
}

/** A compact JWS: three base64url segments without padding (RFC 7515 §7.1). */
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

/**
 * The access token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or undefined when there is none or
 * it is not a canonical compact JWS. The one place latchkey reads a Bearer token from a request.
 *
 * Ambiguity is refused (400), never settled by "first wins": two Authorization headers (Node keeps only
 * the first in `headers`, so the raw list is counted), or a token in the URL — RFC 6750 §2.3's query form,
 * which latchkey never accepts because URLs end up in logs, histories and Referer headers.
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  return BEARER.exec(authorizationHeader(request))?.[1];
}

/**
 * The one Authorization header of a request, '' when there is none. Ambiguous credentials are refused,
 * never settled by "first wins": two Authorization headers, or an access token in the URL as well.
 */
export function authorizationHeader(request: FastifyRequest): string {
  const raw = request.raw.rawHeaders;
  let authorizations = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'authorization') authorizations++;
  if (authorizations > 1) throw new ApiError('invalid_request', 'authorization: send one Authorization header');
  if (hasQueryToken(request.url)) {
    throw new ApiError('invalid_request', 'access_token: send the access token in the Authorization header, never in the URL');
  }
  return request.headers.authorization ?? '';
}

function hasQueryToken(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  return new URLSearchParams(url.slice(q + 1)).has('access_token');
}

/** Token responses are never cached (RFC 6749 §5.1). */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

/** Sends a token response; browsers get the refresh token as an HttpOnly cookie, never in the body. */
export function sendTokens(reply: FastifyReply, config: Config, tokens: IssuedTokens, asCookie: boolean) {
  const body: Record<string, unknown> = {
    access_token: tokens.accessToken,
    token_type: 'Bearer',
    expires_in: tokens.expiresIn,
    refresh_expires_in: tokens.refreshExpiresIn,
    session_id: tokens.sessionId,
  };
  if (asCookie) {
    reply.setCookie(config.cookie.name, tokens.refreshToken, {
      ...cookieAttributes(config),
      maxAge: tokens.refreshExpiresIn,
    });
  } else {
    body.refresh_token = tokens.refreshToken;
  }
  return noStore(reply).code(200).send(body);
}

export function clearRefreshCookie(reply: FastifyReply, config: Config): void {
  reply.setCookie(config.cookie.name, '', { ...cookieAttributes(config), maxAge: 0, expires: new Date(0) });
}

function cookieAttributes(config: Config) {
  return {
    path: config.cookie.path,
    httpOnly: true,
    secure: config.cookie.secure,
    sameSite: 'strict' as const,
  };
}

/**
 * Where the refresh token came from. Channel binding (README "Browser (SPA) flow"): one issued in a cookie is accepted only
 * from the cookie, one issued in a body only from a body; both at once is a 400.
 */
export function presentedRefreshToken(
  request: FastifyRequest,
  config: Config,
  fromBody: string | undefined,
): { token: string; channel: 'cookie' | 'body' } | null {
  // @fastify/cookie keeps the first of several cookies with one name; which one is meant is ambiguous.
  const named = (request.headers.cookie ?? '').split(';').filter((c) => c.trim().startsWith(`${config.cookie.name}=`));
  if (named.length > 1) throw new ApiError('invalid_request', 'cookie: send the refresh cookie once');
  const fromCookie = request.cookies[config.cookie.name] || undefined;
  if (fromCookie && fromBody) {
    throw new ApiError('invalid_request', 'refresh_token: send it in the cookie or in the body, not both');
  }
  if (fromCookie) {
    requireAllowedOrigin(request, config);
    return { token: fromCookie, channel: 'cookie' };
  }
  return fromBody ? { token: fromBody, channel: 'body' } : null;
}

/**
 * The `onRequest` hook of an attempt-counted route: spends one of the client address's attempts before the
 * body is even read (a throttled address costs nothing more); a throttled login is a failed login in the
 * audit trail. The public app attaches it to every route marked `attemptLimit`, the admin console to its
 * login.
 */
export function attemptThrottle(throttles: Pick<Throttles, 'attempt'>, events: EventBus) {
  return async (request: FastifyRequest): Promise<void> => {
    try {
      await throttles.attempt(request.ip);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'rate_limited' && request.routeOptions.url?.endsWith('/login')) {
        const context = clientContext(request);
        events.emit({ type: 'login_failed', userId: null, reason: 'throttled', ip: context.ip, userAgent: context.userAgent }, context);
      }
      throw err;
    }
  };
}

/**
 * Route options that count each request against the client IP's attempt budget (src/throttle.ts), kept
 * in the store so every instance shares it; off when the limit is 0.
 */
export function attemptLimit(config: Config): { config?: { throttle: 'attempt' } } {
  return config.loginRateLimit > 0 ? { config: { throttle: 'attempt' } } : {};
}

/** A session as its owner and operators see it (GET /sessions, the admin API): never a token or key. */
export function sessionView(s: SessionRecord) {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    id: s.id,
    created_at: iso(s.createdAt),
    last_used_at: iso(s.lastUsedAt),
    expires_at: iso(s.expiresAt),
    user_agent: s.userAgent,
    ip: s.ip,
  };
}
