import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ORIGIN } from './app.js';

export const PASSWORD = 'correct horse battery staple';

let counter = 0;
export const uniqueEmail = (tag = 'user') => `${tag}-${process.pid}-${Date.now()}-${++counter}@example.com`;

export async function post(app: FastifyInstance, url: string, body?: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    payload: body === undefined ? undefined : JSON.stringify(body),
  });
}

export async function register(app: FastifyInstance, email = uniqueEmail(), password = PASSWORD) {
  const res = await post(app, '/register', { email, password });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { ...(res.json() as { id: string; email: string }), password };
}

export interface NativeLogin {
  access: string;
  refresh: string;
  sessionId: string;
  body: Record<string, unknown>;
}

export async function loginNative(app: FastifyInstance, email: string, password = PASSWORD, headers = {}): Promise<NativeLogin> {
  const res = await post(app, '/login', { email, password }, headers);
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const body = res.json() as Record<string, string>;
  return { access: body.access_token!, refresh: body.refresh_token!, sessionId: body.session_id!, body };
}

export async function refreshNative(app: FastifyInstance, refreshToken: string) {
  return post(app, '/refresh', { refresh_token: refreshToken });
}

/** The Set-Cookie header for the refresh cookie, parsed. */
export function refreshCookie(res: LightMyRequestResponse, name: string) {
  const cookie = res.cookies.find((c) => c.name === name);
  return cookie as (typeof res.cookies)[number] | undefined;
}

export async function loginBrowser(app: FastifyInstance, email: string, cookieName: string, password = PASSWORD) {
  const res = await post(app, '/login', { email, password, client: 'browser' }, { origin: ORIGIN });
  if (res.statusCode !== 200) throw new Error(`browser login failed: ${res.statusCode} ${res.body}`);
  const cookie = refreshCookie(res, cookieName);
  if (!cookie) throw new Error('no refresh cookie');
  const body = res.json() as Record<string, string>;
  return { res, cookie: cookie.value, access: body.access_token!, sessionId: body.session_id! };
}

export async function refreshBrowser(app: FastifyInstance, cookieName: string, cookie: string, origin = ORIGIN) {
  return app.inject({ method: 'POST', url: '/refresh', headers: { origin }, cookies: { [cookieName]: cookie } });
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
