/**
 * The decision keys every replica shares, kept in a Secret in the webhook's namespace
 * (data key `keys`: one base64 key per line, the sealing key first, then older keys that still
 * verify). Created race-safely on first start: each replica tries to create it with a fresh
 * key, and one that loses the race (AlreadyExists) reads the winner's. Reread periodically so a
 * rotation (a new first line, the old key kept below it) reaches every replica.
 * docs/adr/0013-sealed-decisions.md.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decisionKeyFrom, keyRingFromText, keyRingOf, keyRingToText } from '../domain/decisionRecord.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import type { KubeApis } from './kubeApis.js';
import { ApiFailureKind, classifyApiError, describeApiFailure } from './kubeApis.js';

/** Data key of the Secret that holds the key ring's text. */
export const DECISION_KEYS_DATA_KEY = 'keys';

/** The ring a Secret's `keys` entry holds (base64 of the ring's text); the message names the Secret. */
export function ringFromSecretData(data: string | undefined, where: string): DecisionKeyRing {
  if (data === undefined) throw new Error(`${where} has no "${DECISION_KEYS_DATA_KEY}" entry; delete it so the webhook creates it afresh, or add one base64 key per line`);
  return keyRingFromText(Buffer.from(data, 'base64').toString('utf8'), `${where} entry "${DECISION_KEYS_DATA_KEY}"`);
}

/**
 * Read the decision keys without ever creating them (read-only tools: status, explain): null
 * when the Secret does not exist, i.e. no webhook replica has started in the namespace yet.
 */
export async function readDecisionKeySecret(apis: KubeApis, namespace: string, secretName: string, signal?: AbortSignal): Promise<DecisionKeyRing | null> {
  const where = `Secret ${namespace}/${secretName}`;
  let data: string | undefined;
  try {
    const secret = await apis.core.readNamespacedSecret({ name: secretName, namespace }, apis.callOptions(signal));
    data = secret.data?.[DECISION_KEYS_DATA_KEY];
  } catch (err) {
    const failure = classifyApiError(err);
    if (failure.kind === ApiFailureKind.NotFound) return null;
    throw describeApiFailure(`reading the decision keys (${where})`, failure, apis.server);
  }
  return ringFromSecretData(data, where);
}

export class DecisionKeySecret {
  private current: DecisionKeyRing | null = null;

  constructor(
    private readonly opts: { apis: KubeApis; namespace: string; secretName: string; logger: Logger },
  ) {}

  /** The ring loaded last; throws before the first load (the server waits for it before serving). */
  ring(): DecisionKeyRing {
    if (this.current === null) throw new Error(`decision keys not loaded yet from Secret ${this.opts.namespace}/${this.opts.secretName}`);
    return this.current;
  }

  /** Read the Secret, creating it with a fresh key when it does not exist. */
  async load(signal?: AbortSignal): Promise<DecisionKeyRing> {
    const { apis, namespace, secretName } = this.opts;
    const where = `Secret ${namespace}/${secretName}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const secret = await apis.core.readNamespacedSecret({ name: secretName, namespace }, apis.callOptions(signal));
        return this.adopt(secret.data?.[DECISION_KEYS_DATA_KEY], where);
      } catch (err) {
        const failure = classifyApiError(err);
        if (failure.kind !== ApiFailureKind.NotFound) throw describeApiFailure(`reading the decision keys (${where})`, failure, apis.server);
      }
      const fresh = keyRingOf(decisionKeyFrom(randomBytes(32)));
      try {
        await apis.core.createNamespacedSecret(
          {
            namespace,
            body: {
              metadata: { name: secretName, namespace, labels: { 'app.kubernetes.io/managed-by': 'mps-injector' } },
              type: 'Opaque',
              data: { [DECISION_KEYS_DATA_KEY]: Buffer.from(keyRingToText(fresh)).toString('base64') },
            },
          },
          apis.callOptions(signal),
        );
        this.opts.logger.info({ secret: where, key: fresh.current.id }, 'created the decision key Secret');
        this.current = fresh;
        return fresh;
      } catch (err) {
        const failure = classifyApiError(err);
        // Another replica created it first: read theirs.
        if (failure.kind !== ApiFailureKind.AlreadyExists) throw describeApiFailure(`creating the decision keys (${where})`, failure, apis.server);
      }
    }
    throw new Error(`${where} kept appearing and disappearing while it was read; check what deletes it`);
  }

  private adopt(data: string | undefined, where: string): DecisionKeyRing {
    const ring = ringFromSecretData(data, where);
    if (this.current !== null && this.current.current.id !== ring.current.id) {
      this.opts.logger.info({ secret: where, key: ring.current.id, verifying: ring.verifying.map((k) => k.id) }, 'decision keys rotated: sealing with the new key');
    }
    this.current = ring;
    return ring;
  }
}
