#!/usr/bin/env node
/**
 * Entry point of the `kubectl-mps` bin: kubectl runs it for `kubectl mps ...` once it is on the
 * PATH (it is, after `npm install -g mps-injector`). The operator's commands only.
 */
import { buildKubectlPluginProgram } from './program.js';
import { runCli } from './runCli.js';

await runCli(buildKubectlPluginProgram(), process.argv, 'kubectl mps');
