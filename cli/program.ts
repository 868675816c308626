/**
 * The `mps-injector` command tree: serve, inject, status, explain, doctor, certs, simulate,
 * completion; and the `kubectl mps` plugin's: status, explain, doctor, completion.
 */
import { Command } from 'commander';
import { CertificateError } from '../certs/issue.js';
import { ConfigError, defaultConfig } from '../config/schema.js';
import { packageVersion } from '../version/version.js';
import { serve } from '../webhook/serve.js';
import { registerCertsCommand } from './certsCommand.js';
import { CliError, EXIT_CODES_HELP, ExitCode } from './cliError.js';
import { registerCompletionCommand } from './completionCommand.js';
import { registerDoctorCommand } from './doctorCommand.js';
import { registerExplainCommand } from './explainCommand.js';
import { registerInjectCommand } from './injectCommand.js';
import { registerStatusCommand } from './statusCommand.js';
import { loadConfigFile } from './loadConfigFile.js';
import { registerSimulateCommand } from './simulateCommand.js';

export function buildProgram(): Command {
  const program = new Command('mps-injector')
    .description('NVIDIA MPS GPU sharing for Kubernetes: an admission webhook that places pods on MPS slots from live DCGM metrics')
    .version(packageVersion(), '-v, --version')
    .showHelpAfterError()
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);

  program
    .command('serve')
    .description('run the admission webhook (HTTPS)')
    .option('--config <path>', 'configuration YAML (every field has a default)')
    .action(async (opts: { config?: string }) => {
      const config = opts.config ? await loadConfigFile(opts.config) : defaultConfig();
      try {
        await serve(config, { handleSignals: true });
      } catch (err) {
        // A configuration or certificate the server cannot start with: the message says which file and what to do.
        if (err instanceof ConfigError || err instanceof CertificateError) throw new CliError(err.message, ExitCode.Input);
        throw err;
      }
    });

  registerInjectCommand(program);
  registerStatusCommand(program);
  registerExplainCommand(program);
  registerDoctorCommand(program);
  registerCertsCommand(program);
  registerSimulateCommand(program);
  registerCompletionCommand(program, ['mps-injector']);
  return program;
}

/** `kubectl mps`: the commands that read a live cluster, as a kubectl plugin. */
export function buildKubectlPluginProgram(): Command {
  // kubectl runs the kubectl-mps bin for `kubectl mps`; help names the command as typed.
  const program = new Command('kubectl mps')
    .description('mps-injector as a kubectl plugin: `kubectl mps status`, `kubectl mps explain POD`, `kubectl mps doctor`')
    .version(packageVersion(), '-v, --version')
    .showHelpAfterError()
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  registerStatusCommand(program);
  registerExplainCommand(program);
  registerDoctorCommand(program);
  registerCompletionCommand(program, ['kubectl-mps']);
  return program;
}

