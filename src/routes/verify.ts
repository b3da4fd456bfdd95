import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import { bearerToken } from './common.js';

/**
 * Forward auth for gateways: 200 with the user in headers for a valid, unrevoked Bearer token; 401
 * otherwise; 503 while revocation state cannot be checked (unless a bounded fail-open window is
 * configured). Every method, at `/verify` and anything below it, because gateways ask differently:
 * - nginx `auth_request` sends a GET to a fixed URI;
 * - Traefik ForwardAuth sends a GET with the original request in X-Forwarded-Method and X-Forwarded-Uri;
 * - Envoy ext_authz (HTTP service) repeats the original method and appends the original path to a
 *   prefix (`/verify/orders/42`), without the body unless told to buffer it.
 * The answer depends on the token alone; the method, path and any body are ignored (the body unread).
 */
export const verifyRoutes: FastifyPluginAsync<{ bearer: BearerAuth; config: Config; store: Store }> = async (app, { bearer, config, store }) => {
  const names = config.verifyHeaders;
  // A body an ext_authz service was told to forward is neither parsed nor refused.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const verify = async (request: FastifyRequest, reply: FastifyReply) => {
    const { claims, revocationChecked } = await bearer.check(bearerToken(request), config.verifyFailOpen * 1000);
    // Only on request (a store read per check), and never while failing open: the store is down then, and the
    // accepted token must not turn into a 503. A user gone since the check gets no header. Read before any
    // identity header is set, so that a failed read answers 503 without them.
    const email = names.email && revocationChecked ? (await store.getUser(claims.sub))?.email : undefined;
    reply
      .header('cache-control', 'no-store')
      .header(names.user, claims.sub)
      .header(names.roles, (claims.roles ?? []).join(','))
      .header(names.session, claims.sid)
      .header('x-revocation-checked', String(revocationChecked));
    if (claims.client_id) reply.header(names.client, claims.client_id);
    if (names.email && email !== undefined) reply.header(names.email, email);
    return reply.code(200).send();
  };
  // src/app.ts `forwardAuth`: no browser security headers on the 200.
  const options = { config: { forwardAuth: true as const } };
  app.all('/verify', options, verify);
  app.all('/verify/*', options, verify);
};
