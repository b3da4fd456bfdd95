import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import type { Revocations } from '../tokens/revocation.js';
import { bearerToken, parse } from './common.js';

const params = z.strictObject({ id: z.string().min(1).max(64) });
const iso = (ms: number) => new Date(ms).toISOString();

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
      sessions.map((s) => ({
        id: s.id,
        created_at: iso(s.createdAt),
        last_used_at: iso(s.lastUsedAt),
        expires_at: iso(s.expiresAt),
        user_agent: s.userAgent,
        ip: s.ip,
        current: s.id === claims.sid,
      })),
    );
  });

  // Only the caller's own sessions are reachable: the store looks the id up under the caller's user.
  app.delete('/sessions/:id', async (request, reply) => {
    const claims = await bearer.authenticate(bearerToken(request));
    const { id } = parse(params, request.params);
    if (!(await revocations.revokeSession(claims.sub, id, 'user_request'))) throw new ApiError('not_found', 'No such session.');
    return reply.code(204).send();
  });
};
