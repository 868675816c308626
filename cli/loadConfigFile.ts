import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { ConfigError, parseConfigText } from '../config/schema.js';
import { inputError } from './cliError.js';

/** Read and validate a configuration file; every problem becomes a CliError naming the file. */
export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw inputError(`cannot read configuration file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseConfigText(text, path);
  } catch (err) {
    if (err instanceof ConfigError) throw inputError(err.message);
    throw err;
  }
}
