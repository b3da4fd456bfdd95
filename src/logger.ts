import type { LoggerOptions } from 'pino';

/**
 * Pino options. Secrets never reach a log line: request headers that carry credentials and any body field
 * that might hold a password or token are censored wherever they appear.
 */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.refresh_token',
  '*.access_token',
  'password',
  'refresh_token',
  'access_token',
  'body.password',
  'body.refresh_token',
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
  };
}
