import fastifyCookie from '@fastify/cookie';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Accounts } from '../accounts/accounts.js';
import type { PasswordResets } from '../accounts/password-reset.js';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import type { TokenIssuer } from '../tokens/issuer.js';
import { emailField, passwordField } from './accounts.js';
import { attemptLimit, bearerToken, clientContext, parse, requireAllowedOrigin, sendTokens } from './common.js';

// Length and content are the password policy's to judge (src/accounts/password-policy.ts), in bytes; the
// schema only bounds what is parsed at all.

const changeBody = z.strictObject({ current_password: passwordField, new_password: passwordField });
const forgotBody = z.strictObject({ email: emailField });
const resetBody = z.strictObject({ token: z.string().min(1).max(200), new_password: passwordField });

export interface PasswordRouteOptions {
  accounts: Accounts;
  issuer: TokenIssuer;
  bearer: BearerAuth;
  resets: PasswordResets;
  store: Store;
  config: Config;
  clock: () => number;
}

/** The account owner's password: change it, or reset a forgotten one by a mailed token. */
export const passwordRoutes: FastifyPluginAsync<PasswordRouteOptions> = async (app, { accounts, issuer, bearer, resets, store, config, clock }) => {
  await app.register(fastifyCookie);

  /**
   * Every session is revoked, the caller's too, so no access token issued before the change stays
   * usable; the caller gets a fresh session on the channel its old one used (cookie or body).
   */
  app.post('/password', attemptLimit(config), async (request, reply) => {
    const claims = await bearer.authenticate(bearerToken(request));
    const body = parse(changeBody, request.body);
    const session = (await store.listSessions(claims.sub, clock())).find((s) => s.id === claims.sid);
    const channel = session?.channel ?? 'body';
    // Checked before anything changes: a cookie is set only for an allowed origin, and a browser
    // (a request with an Origin) never gets a refresh token in a body.
    if (channel === 'cookie') requireAllowedOrigin(request, config);
    else if (request.headers.origin) throw new ApiError('invalid_request', 'This session receives its tokens in the body; send no Origin.');
    const context = clientContext(request);
    const user = await accounts.changePassword(claims.sub, body.current_password, body.new_password, context);
    const issued = await issuer.startSession(user, channel, context);
    return sendTokens(reply, config, issued, channel === 'cookie');
  });

  app.post('/password/forgot', attemptLimit(config), async (request, reply) => {
    const body = parse(forgotBody, request.body);
    await resets.request(body.email, clientContext(request));
    return reply.code(202).send({ status: 'accepted' });
  });

  app.post('/password/reset', attemptLimit(config), async (request, reply) => {
    const body = parse(resetBody, request.body);
    await resets.complete(body.token, body.new_password, clientContext(request));
    return reply.code(204).send();
  });
};
