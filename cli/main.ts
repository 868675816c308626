#!/usr/bin/env node
/**
 * Entry point of the `mps-injector` bin.
 */
import { buildProgram } from './program.js';
import { runCli } from './runCli.js';

await runCli(buildProgram(), process.argv, 'mps-injector');
