/**
 * Exit codes of every `mps-injector` command, as kubectl users expect them to differ:
 * 0 done; 1 a pod was refused or a check failed; 2 the command line is wrong; 3 an input could
 * not be read or parsed, or a file, URL or the API server could not be reached.
 */
export const ExitCode = {
  Ok: 0,
  Refused: 1,
  Usage: 2,
  Input: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit codes as `--help` and the README print them. */
export const EXIT_CODES_HELP = 'Exit codes: 0 ok; 1 a pod was refused or a check failed; 2 usage error; 3 input or I/O error (a file, URL or the API server).';

/** A failure the CLI reports as one message and an exit code (default 2: usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** An input that cannot be read or parsed (exit 3). */
export const inputError = (message: string): CliError => new CliError(message, ExitCode.Input);
