import { ApiError } from '../errors.js';
import { COMMON_PASSWORDS } from './common-passwords.js';

/**
 * The password policy of NIST SP 800-63B §5.1.1.2: at least 8 characters, at most 1024 bytes (never
 * truncated: the whole password is hashed), no composition rules, and none of the most common passwords.
 * Applied wherever a password is chosen: registration, change, reset, and accounts made by operators.
 */
export const MIN_PASSWORD_CHARACTERS = 8;
export const MAX_PASSWORD_BYTES = 1024;

let common: Set<string> | undefined;

/** The reason a password is refused, or null. */
export function passwordProblem(password: string): string | null {
  if ([...password].length < MIN_PASSWORD_CHARACTERS) return `must be at least ${MIN_PASSWORD_CHARACTERS} characters`;
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `must be at most ${MAX_PASSWORD_BYTES} bytes`;
  common ??= new Set(COMMON_PASSWORDS.split('\n').filter(Boolean));
  if (common.has(password.toLowerCase())) return 'is one of the most common passwords; choose another';
  return null;
}

/** Throws a 400 naming the field when the password breaks the policy. */
export function checkPasswordPolicy(password: string, field: string): void {
  const problem = passwordProblem(password);
  if (problem) throw new ApiError('invalid_request', `${field}: ${problem}`);
}
