/** A failure the CLI reports as one message and an exit code (1: refused, 2: bad input or usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
