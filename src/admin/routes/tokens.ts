import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import { ApiError } from '../../errors.js';
import { parse } from '../../routes/common.js';

const revokeBody = z.union([
  z.strictObject({ token: z.string().min(1).max(4096) }),
  z.strictObject({ jti: z.string().min(1).max(64), sub: z.string().min(1).max(64), exp: z.number().int().min(0) }),
]);

/** Revoking one access token: by the token itself, or by the claims that name it (from a log or a report). */
export const tokenAdminRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  app.post('/admin/tokens/revoke', async (request, reply) => {
    const body = parse(revokeBody, request.body);
    let claims: { sub: string; jti: string; exp: number };
    if ('token' in body) {
      const signed = await services.bearer.signedClaims(body.token);
      if (!signed) throw new ApiError('invalid_request', 'token: not an unexpired access token of this service');
      claims = signed;
    } else {
      claims = body;
    }
    await services.revocations.revokeAccessToken(claims.sub, claims.jti, claims.exp);
    return reply.code(204).send();
  });
};
