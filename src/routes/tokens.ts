import fastifyCookie from '@fastify/cookie';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Accounts } from '../accounts/accounts.js';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import type { BearerAuth } from '../tokens/bearer.js';
import { channelOf, type Clients } from '../tokens/clients.js';
import type { TokenIssuer } from '../tokens/issuer.js';
import type { Revocations } from '../tokens/revocation.js';
import { emailField, passwordField } from './accounts.js';
import {
  attemptLimit,
  bearerToken,
  clearRefreshCookie,
  clientContext,
  noStore,
  parse,
  presentedRefreshToken,
  refuseBodyTokensToBrowsers,
  requireAllowedOrigin,
  sendTokens,
} from './common.js';

const loginBody = z.strictObject({
  email: emailField,
  password: passwordField,
  client: z.enum(['browser', 'native']).default('native'),
  // RFC 9068 §2.2: which application the session is for (a registered client; see tokens/clients.ts).
  client_id: z.string().max(64).optional(),
});

// Any string: a malformed token (too long, an access token, garbage) is refused like any other bad one,
// 401 invalid_grant, with nothing that tells it apart (the body limit caps the size).
const refreshBody = z.strictObject({ refresh_token: z.string().optional() });

export interface TokenRouteOptions {
  accounts: Accounts;
  issuer: TokenIssuer;
  revocations: Revocations;
  bearer: BearerAuth;
  clients: Clients;
  config: Config;
}

export const tokenRoutes: FastifyPluginAsync<TokenRouteOptions> = async (app, { accounts, issuer, revocations, bearer, clients, config }) => {
  // Only these routes read or set the refresh cookie; everything else (JWKS, /verify) skips the parsing.
  await app.register(fastifyCookie);
  app.post('/login', attemptLimit(config), async (request, reply) => {
    const body = parse(loginBody, request.body);
    const browser = body.client === 'browser';
    if (browser) requireAllowedOrigin(request, config);
    else refuseBodyTokensToBrowsers(request, config, 'client: a request with an Origin comes from a browser, which must log in with "browser"');
    const client = clients.resolve(body.client_id, body.client, request.headers.origin);
    const ctx = clientContext(request);
    const user = await accounts.authenticate(body.email, body.password, ctx, request.log);
    const issued = await issuer.startSession(user, channelOf(body.client), ctx, client);
    return sendTokens(reply, config, issued, browser);
  });

  app.post('/refresh', async (request, reply) => {
    const body = parse(refreshBody, request.body);
    const presented = presentedRefreshToken(request, config, body.refresh_token);
    if (!presented) throw new ApiError('invalid_request', 'refresh_token: required (in the body or the cookie)');
    if (presented.channel === 'body') refuseBodyTokensToBrowsers(request, config, 'refresh_token: a request with an Origin comes from a browser, which refreshes with the cookie');
    const issued = await issuer.refresh(presented.token, presented.channel, clientContext(request));
    return sendTokens(reply, config, issued, presented.channel === 'cookie');
  });

  app.post('/logout', async (request, reply) => {
    const body = parse(refreshBody, request.body);
    const presented = presentedRefreshToken(request, config, body.refresh_token);
    await revocations.logout(presented?.token, await bearer.signedClaims(bearerToken(request)), clientContext(request));
    clearRefreshCookie(reply, config);
    return noStore(reply).code(204).send();
  });

  app.post('/logout-all', async (request, reply) => {
    const claims = await bearer.authenticate(bearerToken(request));
    await revocations.revokeUser(claims.sub, 'logout_all', clientContext(request));
    clearRefreshCookie(reply, config);
    return noStore(reply).code(204).send();
  });
};
