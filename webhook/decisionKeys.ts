/**
 * Where a process outside the cluster integration gets its decision keys: the configured key
 * file, or a fresh random key (decisions then verify only in this process, so a reinvocation
 * that reaches another process is placed afresh). In cluster mode the keys come from the
 * Secret the replicas share (kube/decisionKeySecret.ts).
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/schema.js';
import { keyRingFromText, randomKeyRing } from '../domain/decisionRecord.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';

export async function loadDecisionKeyRing(config: Config): Promise<DecisionKeyRing> {
  const file = config.decisions.keyFile;
  if (file === '') return randomKeyRing();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read decisions.keyFile ${file}: ${(err as Error).message}; create it with \`openssl rand -base64 32 > ${file}\``);
  }
  try {
    return keyRingFromText(text, `decisions.keyFile ${file}`);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
