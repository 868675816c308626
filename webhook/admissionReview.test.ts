import { HttpError } from './httpErrors.js';
import fc from 'fast-check';
import { admissionReviewJson, allowUnchanged, allowWithPatch, decodeAdmissionReview, deny, encodeAdmission, isPodCreate } from './admissionReview.js';

const review = (over: Record<string, unknown> = {}, request: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'u-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: 'ns',
    object: { metadata: { name: 'p' }, spec: { containers: [] } },
    ...request,
  },
  ...over,
});

test('decodes a v1 Pod CREATE', () => {
  const r = decodeAdmissionReview(review());
  expect(r).toMatchObject({ apiVersion: 'admission.k8s.io/v1', uid: 'u-1', namespace: 'ns', dryRun: false, operation: 'CREATE' });
  expect(isPodCreate(r)).toBe(true);
});

test('takes the namespace from the object when the request has none, and reads dryRun', () => {
  const r = decodeAdmissionReview(review({}, { namespace: undefined, dryRun: true, object: { metadata: { namespace: 'from-object' } } }));
  expect(r.namespace).toBe('from-object');
  expect(r.dryRun).toBe(true);
});

test.each([
  [null, /JSON AdmissionReview object/],
  [[], /JSON AdmissionReview object/],
  [{ ...review(), apiVersion: 'admission.k8s.io/v2' }, /unsupported AdmissionReview apiVersion "admission.k8s.io\/v2"/],
  [{ ...review(), kind: 'Pod' }, /expected kind "AdmissionReview"/],
  [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /no "request" object/],
  [review({}, { uid: '' }), /request.uid/],
  [review({}, { kind: 'Pod' }), /request.kind/],
  [review({}, { operation: 7 }), /request.operation/],
  [review({}, { dryRun: 'yes' }), /dryRun must be a boolean/],
  [review({}, { object: null }), /no request.object/],
])('rejects malformed review %#', (body, message) => {
  let caught: unknown;
  try {
    decodeAdmissionReview(body);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(HttpError);
  expect((caught as HttpError).status).toBe(400);
  expect((caught as Error).message).toMatch(message);
});

const deeplyNested = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}1${']'.repeat(depth)}`);

test.each([
  ['a 200 kB apiVersion', { ...review(), apiVersion: 'x'.repeat(200_000) }, /unsupported AdmissionReview apiVersion "x{100}…" \(200000 characters\)/],
  ['a 200 kB kind', { ...review(), kind: 'x'.repeat(200_000) }, /expected kind "AdmissionReview", got "x{100}…" \(200000 characters\)/],
  ['a kind nested 100,000 lists deep', { ...review(), kind: deeplyNested(100_000) }, /expected kind "AdmissionReview", got a list/],
  ['an apiVersion that is an object', { ...review(), apiVersion: { a: 1 } }, /apiVersion an object/],
])('rejects %s with a short message', (_what, body, message) => {
  let caught: unknown;
  try {
    decodeAdmissionReview(body);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(HttpError);
  expect((caught as Error).message).toMatch(message);
  expect((caught as Error).message.length).toBeLessThan(300);
});

test('non-Pod or non-CREATE requests are not ours', () => {
  expect(isPodCreate(decodeAdmissionReview(review({}, { operation: 'UPDATE' })))).toBe(false);
  expect(isPodCreate(decodeAdmissionReview(review({}, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, object: {} })))).toBe(false);
});

test('a patch is base64 JSON with patchType; an empty patch means no patch field', () => {
  const withPatch = allowWithPatch('admission.k8s.io/v1beta1', 'u', [{ op: 'add', path: '/a', value: 1 }], ['w']);
  expect(withPatch.apiVersion).toBe('admission.k8s.io/v1beta1');
  expect(withPatch.response.patchType).toBe('JSONPatch');
  expect(JSON.parse(Buffer.from(withPatch.response.patch!, 'base64').toString())).toEqual([{ op: 'add', path: '/a', value: 1 }]);
  expect(withPatch.response.warnings).toEqual(['w']);
  const empty = allowWithPatch('admission.k8s.io/v1', 'u', [], []);
  expect(empty.response).toEqual({ uid: 'u', allowed: true });
});

test('refusals carry a status code and the message', () => {
  expect(deny('admission.k8s.io/v1', 'u', 403, 'no GPU fits', 'no-fit').response).toEqual({ uid: 'u', allowed: false, status: { code: 403, message: 'no GPU fits', reason: 'no-fit' } });
  expect(encodeAdmission('admission.k8s.io/v1', 'u', { outcome: 'refused', reason: 'invalid-pod', message: 'bad annotation' }).response.status?.code).toBe(400);
  expect(encodeAdmission('admission.k8s.io/v1', 'u', { outcome: 'refused', reason: 'commit-failed', message: 'api down' }).response.status?.code).toBe(503);
  expect(encodeAdmission('admission.k8s.io/v1', 'u', { outcome: 'allowed-unmutated', reason: 'no-fit', warning: 'let through' }).response).toEqual({
    uid: 'u',
    allowed: true,
    warnings: ['let through'],
  });
});

test('the answer text is exactly JSON.stringify of the answer, whatever the uid, patch and warnings', () => {
  const tricky = fc.constantFrom('"patch":""', '\\"patch\\":\\"\\"', '","patch":"', '\u2028', 'ü');
  const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), tricky);
  const value = fc.jsonValue({ maxDepth: 3 });
  fc.assert(
    fc.property(
      fc.constantFrom('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'),
      text,
      fc.array(fc.record({ op: fc.constantFrom('add', 'replace', 'remove'), path: text, value }), { maxLength: 5 }),
      fc.array(text, { maxLength: 3 }),
      (apiVersion, uid, patch, warnings) => {
        for (const review of [
          allowWithPatch(apiVersion as 'admission.k8s.io/v1', uid, patch as never, warnings),
          allowUnchanged(apiVersion as 'admission.k8s.io/v1', uid, warnings),
          deny(apiVersion as 'admission.k8s.io/v1', uid, 403, warnings[0] ?? uid, 'Forbidden'),
        ]) {
          expect(admissionReviewJson(review)).toBe(JSON.stringify(review));
        }
      },
    ),
    { seed: 16, numRuns: 500 },
  );
});
