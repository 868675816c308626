/**
 * Runs a command tree as a process: errors end here, one message and one exit code
 * (cli/cliError.ts ExitCode).
 */
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { CliError, ExitCode } from './cliError.js';

/** Errors of every command, subcommands included, reach runCli instead of ending the process with code 1. */
function overrideExits(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) overrideExits(sub);
}

export async function runCli(program: Command, argv: readonly string[], name: string): Promise<void> {
  overrideExits(program);
  // `mps-injector status | head`: a reader that stops early ends the command, as it ends kubectl.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end well; every other commander error is a usage error (it printed its message).
      process.exitCode = err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`${name}: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = ExitCode.Usage;
  }
}
