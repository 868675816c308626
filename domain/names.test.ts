import { ANNOTATION_PREFIX, Annotation, Label, VolumeName, INIT_CONTAINER_NAME } from './names.js';

test('every annotation and label is under the prefix, each name once', () => {
  const names = [...Object.values(Annotation), ...Object.values(Label)];
  for (const name of names) expect(name.startsWith(ANNOTATION_PREFIX)).toBe(true);
  expect(new Set(names).size).toBe(names.length);
});

test('names the webhook adds to pods are prefixed mps-injector- and valid DNS labels', () => {
  for (const name of [...Object.values(VolumeName), INIT_CONTAINER_NAME]) {
    expect(name).toMatch(/^mps-injector-[a-z0-9-]*[a-z0-9]$/);
    expect(name.length).toBeLessThanOrEqual(63 - 3); // room for a "-NN" suffix
  }
});
