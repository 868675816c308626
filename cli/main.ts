#!/usr/bin/env node
/**
 * Entry point of the `mps-injector` bin. Errors end here: one message, one exit code.
 */
import { CommanderError } from 'commander';
import { CliError, ExitCode } from './cliError.js';
import { buildProgram } from './program.js';

async function main(): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end well; every other commander error is a usage error (it printed its message).
      process.exitCode = err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`mps-injector: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`mps-injector: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = ExitCode.Usage;
  }
}

await main();
