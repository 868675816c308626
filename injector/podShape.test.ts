import { podShapeProblem } from './podShape.js';

const podWithEnv = (env: unknown[]): unknown => ({ metadata: { name: 'p' }, spec: { containers: [{ name: 'main', env }] } });

describe('podShapeProblem: env vars', () => {
  test('well-formed env vars pass, with a value, a valueFrom, null or neither', () => {
    expect(podShapeProblem(podWithEnv([{ name: 'A', value: 'x' }, { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }, { name: 'C', value: null }, { name: 'D' }]))).toBeNull();
  });

  test.each([
    ['a missing name', [{ value: 'x' }], 'pod.spec.containers[0].env[0].name is missing: it must be a string'],
    ['a numeric name', [{ name: 'A' }, { name: 7 }], 'pod.spec.containers[0].env[1].name must be a string, not a number'],
    ['a numeric value', [{ name: 'A', value: 3 }], 'pod.spec.containers[0].env[0].value must be a string, not a number'],
    ['a string valueFrom', [{ name: 'A', valueFrom: 'secret' }], 'pod.spec.containers[0].env[0].valueFrom must be an object, not a string'],
    ['a null entry', [null], 'pod.spec.containers[0].env[0] must be an object, not null'],
    ['a list entry', [['A', 'x']], 'pod.spec.containers[0].env[0] must be an object, not a list'],
    ['a name that is only inherited', [Object.create({ name: 'A' }) as object], 'pod.spec.containers[0].env[0].name is missing: it must be a string'],
  ])('%s is named with its path', (_what, env, problem) => {
    expect(podShapeProblem(podWithEnv(env))).toContain(problem);
  });

  test('at most three problems are listed, however many env vars are wrong', () => {
    const message = podShapeProblem(podWithEnv(Array.from({ length: 5000 }, () => ({ name: 1 }))));
    expect(message?.match(/must be a string/g)).toHaveLength(3);
  });
});
