import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { TokenService } from '../tokens/token-service.js';
import { parse } from './common.js';

const params = z.strictObject({ id: z.string().min(1).max(64) });
const iso = (ms: number) => new Date(ms).toISOString();

export const sessionRoutes: FastifyPluginAsync<{ tokens: TokenService }> = async (app, { tokens }) => {
  app.get('/sessions', async (request, reply) => {
    const claims = await tokens.authenticate(request.headers.authorization);
    const sessions = await tokens.listSessions(claims);
    return reply.header('cache-control', 'no-store').send(
      sessions.map((s) => ({
        id: s.id,
        created_at: iso(s.createdAt),
        last_used_at: iso(s.lastUsedAt),
        expires_at: iso(s.expiresAt),
        user_agent: s.userAgent,
        ip: s.ip,
        current: s.current,
      })),
    );
  });

  app.delete('/sessions/:id', async (request, reply) => {
    const claims = await tokens.authenticate(request.headers.authorization);
    const { id } = parse(params, request.params);
    await tokens.revokeSession(claims, id);
    return reply.code(204).send();
  });
};
