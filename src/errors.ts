/**
 * Errors a client may see. Each has a stable snake_case code (the contract in openapi.yaml) and a status;
 * the description is generic text for humans. Details and causes go to the log, never to the client.
 */
export const errorStatus = {
  invalid_request: 400,
  invalid_credentials: 401,
  invalid_grant: 401,
  invalid_token: 401,
  // OAuth 2 endpoints (/token, /revoke) answer in RFC 6749 §5.2 terms.
  invalid_client: 401,
  unsupported_grant_type: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export interface ErrorBody {
  error: ErrorCode;
  error_description: string;
}

export class ApiError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    readonly description: string,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown; status?: number },
  ) {
    super(`${code}: ${description}`, options);
    this.name = 'ApiError';
    // `status` only where a protocol fixes another one: RFC 6749 §5.2 `invalid_grant` is 400 on /token.
    this.status = options?.status ?? errorStatus[code];
  }

  toBody(): ErrorBody {
    return { error: this.code, error_description: this.description };
  }
}

/** Seconds a client should wait before retrying after a 503 from the store. */
export const RETRY_AFTER_SECONDS = 2;

/**
 * The store could not answer (connection down, timeout, script error). Callers must not guess: the route
 * answers 503 and the client keeps what it has (RFC 9110 §15.6.4).
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

export const unavailable = (cause?: unknown) =>
  new ApiError(
    'temporarily_unavailable',
    'The service is temporarily unavailable; retry later.',
    { 'retry-after': String(RETRY_AFTER_SECONDS) },
    { cause },
  );

export const invalidCredentials = () => new ApiError('invalid_credentials', 'The e-mail or password is incorrect.');

export const invalidGrant = () => new ApiError('invalid_grant', 'The refresh token is invalid or expired.');

export const invalidToken = (description = 'The access token is invalid, expired or revoked.') =>
  new ApiError('invalid_token', description, {
    'www-authenticate': `Bearer error="invalid_token", error_description="${description}"`,
  });
