/** A fixed decision key ring for tests and golden files: seals made with it are reproducible. */
import { decisionKeyFrom, keyRingOf } from '../domain/decisionRecord.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';

export const TEST_KEY_RING: DecisionKeyRing = keyRingOf(decisionKeyFrom(Buffer.alloc(32, 0x6d)));
