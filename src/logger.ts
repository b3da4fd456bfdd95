import type { LoggerOptions } from 'pino';

/**
 * Pino options. Secrets never reach a log line: request headers that carry credentials and any body field
 * that might hold a password or token are censored wherever they appear, and URLs lose their query string
 * (a token or code in a query is a credential too).
 */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  '*.password',
  '*.refresh_token',
  '*.access_token',
  'password',
  'refresh_token',
  'access_token',
  'body.password',
  'body.refresh_token',
];

/** The path of a URL, without its query string or fragment. */
export function withoutQuery(url: unknown): unknown {
  return typeof url === 'string' ? url.replace(/[?#].*$/s, '') : url;
}

interface RequestLike {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: {
      // What Fastify logs of a request by default, with the query string dropped from the URL.
      req: (req: RequestLike) => ({
        method: req.method,
        url: withoutQuery(req.url),
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
      url: withoutQuery,
    },
  };
}
