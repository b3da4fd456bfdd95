/** A CLI failure the user can act on: its message is shown as is; exit code 2 for usage, 1 otherwise. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: 1 | 2 = 1,
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
