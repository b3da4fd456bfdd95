import fastifyCookie from '@fastify/cookie';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import type { TokenService } from '../tokens/token-service.js';
import { emailField, passwordField } from './accounts.js';
import { attemptLimit, clearRefreshCookie, clientContext, parse, presentedRefreshToken, requireAllowedOrigin, sendTokens } from './common.js';

const loginBody = z.strictObject({
  email: emailField,
  password: passwordField,
  client: z.enum(['browser', 'native']).default('native'),
});

const refreshBody = z.strictObject({ refresh_token: z.string().min(1).max(512).optional() });

export const tokenRoutes: FastifyPluginAsync<{ tokens: TokenService; config: Config }> = async (app, { tokens, config }) => {
  // Only these routes read or set the refresh cookie; everything else (JWKS, /verify) skips the parsing.
  await app.register(fastifyCookie);
  app.post('/login', attemptLimit(config), async (request, reply) => {
    const body = parse(loginBody, request.body);
    const browser = body.client === 'browser';
    if (browser) requireAllowedOrigin(request, config);
    const issued = await tokens.login(body.email, body.password, browser ? 'cookie' : 'body', clientContext(request));
    return sendTokens(reply, config, issued, browser);
  });

  app.post('/refresh', async (request, reply) => {
    const body = parse(refreshBody, request.body);
    const presented = presentedRefreshToken(request, config, body.refresh_token);
    if (!presented) throw new ApiError('invalid_request', 'refresh_token: required (in the body or the cookie)');
    const issued = await tokens.refresh(presented.token, presented.channel, clientContext(request));
    return sendTokens(reply, config, issued, presented.channel === 'cookie');
  });

  app.post('/logout', async (request, reply) => {
    const body = parse(refreshBody, request.body);
    const presented = presentedRefreshToken(request, config, body.refresh_token);
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    await tokens.logout(presented?.token, bearer);
    clearRefreshCookie(reply, config);
    return reply.code(204).send();
  });

  app.post('/logout-all', async (request, reply) => {
    const claims = await tokens.authenticate(request.headers.authorization);
    await tokens.logoutAll(claims);
    clearRefreshCookie(reply, config);
    return reply.code(204).send();
  });
};
