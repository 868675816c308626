/** A fixed decision key ring for tests and golden files: seals made with it are reproducible. */
import { decisionKeyFrom, keyRingOf, keyRingToText } from '../domain/decisionRecord.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';

export const TEST_KEY_RING: DecisionKeyRing = keyRingOf(decisionKeyFrom(Buffer.alloc(32, 0x6d)));

/** The decision key Secret's data holding TEST_KEY_RING, to seed a stand-in API server so the integration seals and verifies with it. */
export function testKeySecret(namespace: string, name = 'mps-injector-decision-key'): { metadata: { name: string; namespace: string }; type: string; data: Record<string, string> } {
  return { metadata: { name, namespace }, type: 'Opaque', data: { keys: Buffer.from(keyRingToText(TEST_KEY_RING)).toString('base64') } };
}
