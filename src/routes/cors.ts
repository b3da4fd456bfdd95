import type { FastifyCorsOptions } from '@fastify/cors';
import type { Config } from '../config.js';

/**
 * How long a browser may cache a preflight answer, in seconds. Short enough that removing an origin from
 * the allow-list takes effect soon (Chromium caps it at 7200 anyway).
 */
export const PREFLIGHT_MAX_AGE = 600;

/**
 * CORS for the configured origins only (README "Browser (SPA) flow"). An allowed origin is echoed, never `*`
 * (the Fetch standard forbids `*` with credentials), with `Access-Control-Allow-Credentials` so the refresh
 * cookie travels, and `Vary: Origin` on every answer so caches keep answers to different origins apart.
 * Any other origin, and a request without one, gets no CORS header at all, and its preflight a 404: the
 * browser then neither sends the request nor lets the page read an answer. CORS only decides what a page
 * may read; the cookie endpoints still check `Origin` themselves (routes/common.ts requireAllowedOrigin),
 * since a simple POST is sent before the browser looks at any CORS header.
 */
export function corsOptions(config: Config): FastifyCorsOptions {
  const allowed = new Set([...config.allowedOrigins, ...config.nativeOrigins]);
  return {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['content-type', 'authorization'],
    // Headers a page needs to act on an error: when to retry, and why a Bearer token was refused.
    exposedHeaders: ['retry-after', 'www-authenticate'],
    maxAge: PREFLIGHT_MAX_AGE,
    // A bare OPTIONS from an allowed origin is answered like a preflight instead of a text/plain 400,
    // which would break the error contract (every error is JSON).
    strictPreflight: false,
  };
}
