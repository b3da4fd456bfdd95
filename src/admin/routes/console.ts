import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import { ApiError, invalidCredentials } from '../../errors.js';
import { emailField, passwordField } from '../../routes/accounts.js';
import { attemptThrottle, bearerToken, clientContext, parse } from '../../routes/common.js';

const loginBody = z.strictObject({ email: emailField, password: passwordField });

/**
 * The console's page may load its own script and style and talk to its own origin (the admin API), and
 * nothing else: no inline script or style, no framing, no <base>, forms only to itself.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** The page's files (src/admin/console/), served from memory under these paths and no others. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/admin/console': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/admin/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/admin/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin');
}

/**
 * A browser says where a request comes from (Fetch Metadata). Only the console's own page, or a user
 * typing the URL, may sign in or out: a form or script on another site is refused before any password
 * check. Clients that send no Sec-Fetch-Site (curl, older browsers) pass; for those, the JSON content
 * type (no form can send it, and the admin app answers no CORS preflight) keeps cross-site posts out.
 */
function requireSameOrigin(request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new ApiError('forbidden', 'The console signs in only from its own page.');
  }
}

/**
 * The ops console (README "The ops console"): a page on the admin listener that drives the admin API, and
 * its sign-in. The page keeps the access token in memory only; the admin API takes credentials from the
 * Authorization header only, never from a cookie, so another site's page has nothing to ride on.
 *
 * Signing in starts an ordinary session (audited like any login) for an account with the role `admin`,
 * and returns its access token only: the refresh token is never sent, so the console's session ends
 * when the access token expires or the page is closed, and nothing long-lived ever reaches the browser.
 */
export const consoleRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  const dir = new URL('../console/', import.meta.url);
  const files = new Map(
    await Promise.all(Object.entries(ASSETS).map(async ([path, a]) => [path, { type: a.type, body: await readFile(new URL(a.file, dir), 'utf8') }] as const)),
  );
  const open = { config: { adminPublic: true as const } };

  for (const [path, asset] of files) {
    app.get(path, open, async (_request, reply) => securityHeaders(reply).type(asset.type).send(asset.body));
  }

  app.post(
    '/admin/console/login',
    {
      ...open,
      // The public /login's per-address budget, before the body is even parsed (src/throttle.ts).
      onRequest: [async (request: FastifyRequest) => requireSameOrigin(request), attemptThrottle(services.throttles, services.events)],
    },
    async (request, reply) => {
      const body = parse(loginBody, request.body);
      // No operator signs in here: the entries name the user (adminActor is never set on this route).
      const ctx = clientContext(request);
      const user = await services.accounts.authenticate(body.email, body.password, ctx, request.log);
      // After the password check, so a non-admin costs the same time and gets the same answer as a wrong
      // password: the page does not tell which accounts are admins.
      if (!user.roles.includes('admin')) {
        request.log.warn({ event: 'login_failed', reason: 'not_admin', userId: user.id, ip: ctx.ip }, 'security: console login refused');
        services.events.emit({ type: 'login_failed', userId: user.id, reason: 'not_admin', ip: ctx.ip, userAgent: ctx.userAgent }, ctx);
        throw invalidCredentials();
      }
      const issued = await services.issuer.startSession(user, 'body', ctx);
      return securityHeaders(reply).code(200).send({
        access_token: issued.accessToken,
        token_type: 'Bearer',
        expires_in: issued.expiresIn,
        session_id: issued.sessionId,
      });
    },
  );

  /**
   * Signing out revokes the session the access token belongs to (and with it the token, everywhere). Any
   * live access token may end its own session here, admin or not any more: a demoted admin can still
   * sign out.
   */
  app.post('/admin/console/logout', { ...open, onRequest: async (request) => requireSameOrigin(request) }, async (request, reply) => {
    const claims = await services.bearer.authenticate(bearerToken(request));
    await services.revocations.revokeSession(claims.sub, claims.sid, 'logout', clientContext(request));
    return securityHeaders(reply).code(204).send();
  });
};
