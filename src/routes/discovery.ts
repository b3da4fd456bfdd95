import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';

/** Discovery documents change only with the configuration; an hour's caching costs nothing. */
const MAX_AGE_SECONDS = 3600;

/**
 * Where latchkey's endpoints are, seen from outside: the issuer if it already ends with the base path
 * (https://example.com/auth with LATCHKEY_BASE_PATH=/auth), else the issuer with the base path appended.
 */
export function publicBase(config: Config): string {
  return config.basePath && new URL(config.issuer).pathname.replace(/\/$/, '').endsWith(config.basePath)
    ? config.issuer
    : `${config.issuer}${config.basePath}`;
}

/**
 * Authorization server metadata (RFC 8414) and its OpenID Connect Discovery 1.0 twin. Honest: only what
 * exists. There is no authorization endpoint (so no response types), no ID token (so no
 * `id_token_signing_alg_values_supported`), no scopes, and clients are public (`none`). Resource
 * servers and gateways that configure themselves from discovery need `issuer` and `jwks_uri`; OAuth
 * clients need the token, revocation and userinfo endpoints.
 */
export function metadata(config: Config) {
  const base = publicBase(config);
  return {
    issuer: config.issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/token`,
    revocation_endpoint: `${base}/revoke`,
    userinfo_endpoint: `${base}/userinfo`,
    grant_types_supported: ['refresh_token'],
    response_types_supported: [] as string[],
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    claims_supported: ['sub', 'email', 'roles'],
  };
}

function document(body: unknown) {
  const json = JSON.stringify(body);
  return { json, etag: `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"` };
}

function send(request: FastifyRequest, reply: FastifyReply, doc: { json: string; etag: string }) {
  reply.header('cache-control', `public, max-age=${MAX_AGE_SECONDS}`).header('etag', doc.etag);
  const match = request.headers['if-none-match'];
  if (match && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === doc.etag)) return reply.code(304).send();
  return reply.type('application/json').send(doc.json);
}

export const discoveryRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const oauth = document(metadata(config));
  // OpenID Connect Discovery 1.0 §3 adds `subject_types_supported`: `sub` is the same for every client.
  const openid = document({ ...metadata(config), subject_types_supported: ['public'] });
  app.get('/.well-known/oauth-authorization-server', async (request, reply) => send(request, reply, oauth));
  app.get('/.well-known/openid-configuration', async (request, reply) => send(request, reply, openid));
};

/**
 * RFC 8414 §3.1 puts the metadata of an issuer with a path at /.well-known/oauth-authorization-server
 * followed by that path, outside it. Registered at the root, so only when the issuer has a path.
 */
export const rootDiscoveryRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const path = new URL(config.issuer).pathname.replace(/\/$/, '');
  if (!path) return;
  const oauth = document(metadata(config));
  app.get(`/.well-known/oauth-authorization-server${path}`, async (request, reply) => send(request, reply, oauth));
};
