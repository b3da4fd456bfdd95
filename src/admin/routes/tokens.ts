import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import { ApiError } from '../../errors.js';
import { adminContext } from '../auth.js';
import { parse } from '../../routes/common.js';

const revokeBody = z.union([
  z.strictObject({ token: z.string().min(1).max(4096) }),
  z.strictObject({ jti: z.string().min(1).max(64), sub: z.string().min(1).max(64), exp: z.number().int().min(0) }),
]);

const revokeAllBody = z.strictObject({ role: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a role name').optional() });

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
    await services.revocations.revokeAccessToken(claims.sub, claims.jti, claims.exp, adminContext(request));
    return reply.code(204).send();
  });

  /**
   * The incident switch: every session of every user (or of every user holding `role`) created before now
   * is revoked, on every instance at once and in verifiers within about a second. Its undo is new logins.
   */
  app.post('/admin/revoke-all', async (request, reply) => {
    const { role } = parse(revokeAllBody, request.body ?? {});
    const revokedAfter = await services.revocations.revokeEveryone(role ?? null, adminContext(request));
    return reply.code(200).send({ revoked_after: new Date(revokedAfter).toISOString(), role: role ?? null });
  });
};
