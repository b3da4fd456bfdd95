import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import { freePort } from '../support/redis-server.js';

/**
 * A stock OAuth 2 client library (oauth4webapi, as used by Auth.js and many others) against latchkey on
 * a real socket: it discovers the endpoints, refreshes, reads userinfo and revokes, validating every
 * answer by the RFCs' rules. Plain http on loopback, so insecure requests are allowed explicitly.
 */
describe('a stock OAuth client (oauth4webapi) against a running latchkey', () => {
  let t: TestApp;
  let issuer: URL;
  const insecure = { [oauth.allowInsecureRequests]: true } as const;

  beforeAll(async () => {
    const port = await freePort();
    t = await buildTestApp('redis', { LATCHKEY_ISSUER: `http://127.0.0.1:${port}`, LATCHKEY_CLIENTS: 'ios-app:native' }, { clock: Date.now });
    await t.app.listen({ host: '127.0.0.1', port });
    issuer = new URL(t.config.issuer);
  });
  afterAll(async () => t.close());

  async function login(clientId?: string) {
    const email = uniqueEmail('oauth');
    const json = { 'content-type': 'application/json' };
    await fetch(new URL('/register', issuer), { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    const res = await fetch(new URL('/login', issuer), {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email, password: PASSWORD, ...(clientId && { client_id: clientId }) }),
    });
    expect(res.status).toBe(200);
    return { email, ...((await res.json()) as { access_token: string; refresh_token: string; session_id: string }) };
  }

  it('discovers latchkey by both well-known documents and gets the same metadata', async () => {
    const as2 = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const oidc = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
    expect(as2.token_endpoint).toBe(new URL('/token', issuer).href);
    expect(oidc).toMatchObject({ ...as2, subject_types_supported: ['public'] });
    // The JWKS it points at verifies latchkey's access tokens.
    const tokens = await login();
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(as2.jwks_uri!)), {
      issuer: as2.issuer,
      audience: t.config.audience,
    });
    expect(payload.sid).toBe(tokens.session_id);
  });

  it('refreshes, reads userinfo and revokes, rotation and reuse detection included', async () => {
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const client: oauth.Client = { client_id: 'ios-app' };
    const auth = oauth.None();
    const tokens = await login('ios-app');

    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure),
    );
    expect(refreshed.token_type).toBe('bearer');
    expect(refreshed.refresh_token).toMatch(/^lk_rt_/);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    const claims = await jwtVerify(refreshed.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: as.issuer, audience: t.config.audience });
    expect(claims.payload.client_id).toBe('ios-app');

    const sub = String(claims.payload.sub);
    const info = await oauth.processUserInfoResponse(as, client, sub, await oauth.userInfoRequest(as, client, refreshed.access_token, insecure));
    expect(info).toMatchObject({ sub, email: tokens.email, roles: [] });

    // Revoking the access token: userinfo refuses it, the session lives on.
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, auth, refreshed.access_token, { additionalParameters: { token_type_hint: 'access_token' }, ...insecure }),
    );
    await expect(
      oauth.processUserInfoResponse(as, client, sub, await oauth.userInfoRequest(as, client, refreshed.access_token, insecure)),
    ).rejects.toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const second = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token!, insecure),
    );

    // Revoking the refresh token ends the session: the next grant is invalid_grant, as the library expects.
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, second.refresh_token!, insecure));
    const refused = await oauth
      .processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, second.refresh_token!, insecure))
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(oauth.ResponseBodyError);
    expect(refused).toMatchObject({ error: 'invalid_grant', status: 400 });
    // Revoking again, or something unknown, is still a success (RFC 7009 §2.2).
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, second.refresh_token!, insecure));
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, 'not-a-token', insecure));
  });

  it('a client the registry does not know is invalid_client; another registered client may not use the session', async () => {
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const tokens = await login('ios-app');
    const stranger = await oauth
      .processRefreshTokenResponse(as, { client_id: 'stranger' }, await oauth.refreshTokenGrantRequest(as, { client_id: 'stranger' }, oauth.None(), tokens.refresh_token, insecure))
      .catch((err: unknown) => err);
    expect(stranger).toMatchObject({ error: 'invalid_client', status: 401 });
    const other = { client_id: 'latchkey-native' };
    const wrong = await oauth
      .processRefreshTokenResponse(as, other, await oauth.refreshTokenGrantRequest(as, other, oauth.None(), tokens.refresh_token, insecure))
      .catch((err: unknown) => err);
    expect(wrong).toMatchObject({ error: 'invalid_grant' });
  });
});
