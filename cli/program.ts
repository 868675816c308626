/**
 * The `mps-injector` command tree: serve, inject, certs, simulate.
 */
import { Command } from 'commander';
import { CertificateError } from '../certs/issue.js';
import { ConfigError, defaultConfig } from '../config/schema.js';
import { packageVersion } from '../version/version.js';
import { serve } from '../webhook/serve.js';
import { registerCertsCommand } from './certsCommand.js';
import { CliError } from './cliError.js';
import { registerInjectCommand } from './injectCommand.js';
import { loadConfigFile } from './loadConfigFile.js';
import { registerSimulateCommand } from './simulateCommand.js';

export function buildProgram(): Command {
  const program = new Command('mps-injector')
    .description('NVIDIA MPS GPU sharing for Kubernetes: an admission webhook that places pods on MPS slots from live DCGM metrics')
    .version(packageVersion(), '-v, --version')
    .showHelpAfterError();

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
        if (err instanceof ConfigError || err instanceof CertificateError) throw new CliError(err.message);
        throw err;
      }
    });

  registerInjectCommand(program);
  registerCertsCommand(program);
  registerSimulateCommand(program);
  return program;
}

