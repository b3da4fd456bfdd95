import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import type { Revocations } from '../tokens/revocation.js';
import { bearerToken, clientContext, parse, sessionView } from './common.js';

const params = z.strictObject({ id: z.string().min(1).max(64) });

export interface SessionRouteOptions {
  bearer: BearerAuth;
  revocations: Revocations;
  store: Store;
  clock: () => number;
}

export const sessionRoutes: FastifyPluginAsync<SessionRouteOptions> = async (app, { bearer, revocations, store, clock }) => {
  app.get('/sessions', async (request, reply) => {
    const claims = await bearer.authenticate(bearerToken(request));
    const sessions = await store.listSessions(claims.sub, clock());
    return reply.header('cache-control', 'no-store').send(
      sessions.map((s) => ({ ...sessionView(s), current: s.id === claims.sid })),
    );
  });

  // Only the caller's own sessions are reachable: the store looks the id up under the caller's user.
  app.delete('/sessions/:id', async (request, reply) => {
    const claims = await bearer.authenticate(bearerToken(request));
    const { id } = parse(params, request.params);
    if (!(await revocations.revokeSession(claims.sub, id, 'user_request', clientContext(request)))) throw new ApiError('not_found', 'No such session.');
    return reply.code(204).send();
  });
};
