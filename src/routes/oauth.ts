import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config.js';
import { ApiError, invalidToken } from '../errors.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import type { Clients } from '../tokens/clients.js';
import type { TokenIssuer } from '../tokens/issuer.js';
import { parseRefreshToken } from '../tokens/refresh-token.js';
import type { Revocations } from '../tokens/revocation.js';
import { bearerToken, clientContext, noStore, parse, sendTokens, safeName } from './common.js';

export interface OAuthRouteOptions {
  issuer: TokenIssuer;
  revocations: Revocations;
  bearer: BearerAuth;
  clients: Clients;
  store: Store;
  config: Config;
}

const FORM = 'application/x-www-form-urlencoded';

/** RFC 6749 §3.2: unknown parameters are ignored, so only the known ones are read. */
const tokenForm = z.object({
  grant_type: z.string().max(64).optional(),
  refresh_token: z.string().max(512).optional(),
  client_id: z.string().max(64).optional(),
  client_secret: z.string().max(512).optional(),
  scope: z.string().max(1024).optional(),
});

const revokeForm = z.object({
  token: z.string().max(4096).optional(),
  token_type_hint: z.string().max(64).optional(),
  client_id: z.string().max(64).optional(),
  client_secret: z.string().max(512).optional(),
});

/**
 * OAuth 2 endpoints for stock clients (oauth4webapi, AppAuth): the refresh grant (RFC 6749 §6), token
 * revocation (RFC 7009) and userinfo. The rest of the API stays JSON-only; these two speak only
 * `application/x-www-form-urlencoded` (RFC 6749 §4.1.3, RFC 7009 §2.1), parsed here and nowhere else.
 * Clients are public (RFC 6749 §2.1): `client_id` names one, nothing authenticates it, and the
 * password grant does not exist (RFC 9700 §2.4).
 */
export const oauthRoutes: FastifyPluginAsync<OAuthRouteOptions> = async (app, opts) => {
  const { issuer, revocations, bearer, clients, store, config } = opts;

  await app.register(async (forms) => {
    forms.removeAllContentTypeParsers();
    forms.addContentTypeParser(FORM, { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseForm(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    forms.addHook('onRequest', async (request) => {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== FORM) throw new ApiError('unsupported_media_type', `Send ${FORM}.`);
    });

    forms.post('/token', async (request, reply) => {
      noStore(reply);
      const form = parse(tokenForm, request.body);
      refuseClientAuthentication(request, form.client_secret);
      // README "Browser (SPA) flow": a request carrying a browser Origin never receives a refresh token in a
      // body. Browser apps refresh with the HttpOnly cookie at /refresh.
      if (request.headers.origin !== undefined) {
        throw new ApiError('invalid_request', 'Browser clients refresh with the cookie at /refresh, not at /token.');
      }
      if (!form.grant_type) throw new ApiError('invalid_request', 'grant_type: required');
      if (form.grant_type !== 'refresh_token') {
        throw new ApiError('unsupported_grant_type', 'Only the refresh_token grant is supported.');
      }
      if (!form.refresh_token) throw new ApiError('invalid_request', 'refresh_token: required');
      const client = clients.resolve(form.client_id, 'native', undefined, unknownClient);
      try {
        // Checked against the session's client only when the client names itself (RFC 6749 §6).
        const issued = await issuer.refresh(form.refresh_token, 'body', clientContext(request), form.client_id === undefined ? undefined : client);
        return sendTokens(reply, config, issued, false);
      } catch (err) {
        // RFC 6749 §5.2: invalid_grant is a 400 here, where OAuth clients expect it; /refresh keeps 401.
        if (err instanceof ApiError && err.code === 'invalid_grant') {
          throw new ApiError('invalid_grant', err.description, {}, { status: 400 });
        }
        throw err;
      }
    });

    forms.post('/revoke', async (request, reply) => {
      noStore(reply);
      const form = parse(revokeForm, request.body);
      refuseClientAuthentication(request, form.client_secret);
      if (!form.token) throw new ApiError('invalid_request', 'token: required');
      if (form.client_id !== undefined && !clients.has(form.client_id)) throw unknownClient();
      // The hint only says where to look first (RFC 7009 §2.1); both kinds are recognisable anyway.
      if (parseRefreshToken(form.token)) {
        await revocations.logout(form.token, null, clientContext(request));
      } else {
        const claims = await bearer.signedClaims(form.token);
        if (claims) await revocations.logout(undefined, claims, clientContext(request));
      }
      // RFC 7009 §2.2: an invalid, unknown or already revoked token is answered like a revoked one.
      return reply.code(200).send();
    });
  });

  app.get('/userinfo', async (request, reply) => {
    noStore(reply);
    const claims = await bearer.authenticate(bearerToken(request));
    const user = await store.getUser(claims.sub);
    if (!user) throw invalidToken();
    // Only what latchkey knows to be true: no email_verified, since it never verifies addresses.
    return reply.send({ sub: user.id, email: user.email, roles: user.roles });
  });
};

/** The scheme of an Authorization header, if it is a token (RFC 9110 §11.1). */
const AUTH_SCHEME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?= |$)/;

const unknownClient = () => new ApiError('invalid_client', 'Unknown client, or not allowed to use this endpoint.');

/**
 * Confidential clients do not exist here (the discovery documents say `none`): a client that tries to
 * authenticate is told so (RFC 6749 §5.2 `invalid_client`, with the challenge for the scheme it used)
 * rather than having its credentials silently ignored.
 */
function refuseClientAuthentication(request: FastifyRequest, clientSecret: string | undefined): void {
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    throw new ApiError('invalid_client', 'Client authentication is not supported; send client_id in the form.', {
      'www-authenticate': `${AUTH_SCHEME.exec(authorization)?.[0] ?? 'Basic'} realm="latchkey"`,
    });
  }
  if (clientSecret !== undefined) {
    throw new ApiError('invalid_client', 'Client authentication is not supported; send client_id in the form.');
  }
}

/**
 * application/x-www-form-urlencoded (the WHATWG URL standard's parser). RFC 6749 §3.2: a parameter sent
 * without a value is as if omitted, and none may appear twice.
 */
function parseForm(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (seen.has(name)) throw new ApiError('invalid_request', `${safeName(name)}: must not be repeated`);
    seen.add(name);
    if (value !== '') out[name] = value;
  }
  return out;
}
