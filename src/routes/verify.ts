import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import type { BearerAuth } from '../tokens/bearer.js';
import { bearerToken } from './common.js';

/**
 * Forward auth for gateways (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz in HTTP mode):
 * 200 with the user in headers for a valid, unrevoked Bearer token; 401 otherwise; 503 while revocation
 * state cannot be checked (unless a bounded fail-open window is configured).
 */
export const verifyRoutes: FastifyPluginAsync<{ bearer: BearerAuth; config: Config }> = async (app, { bearer, config }) => {
  app.get('/verify', async (request, reply) => {
    const { claims, revocationChecked } = await bearer.check(bearerToken(request), config.verifyFailOpen * 1000);
    return reply
      .header('cache-control', 'no-store')
      .header('x-user-id', claims.sub)
      .header('x-user-roles', (claims.roles ?? []).join(','))
      .header('x-session-id', claims.sid)
      .header('x-revocation-checked', String(revocationChecked))
      .code(200)
      .send();
  });
};
