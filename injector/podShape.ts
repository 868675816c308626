/**
 * The shape of the parts of a pod that the injector reads and writes: the types the API server's
 * decoder guarantees for a pod it sends, checked here because the webhook's input is plain JSON
 * (and the CLI's plain YAML). Everything else in the pod passes through unread. Pure.
 *
 * Hand-written rather than a zod schema: zod copies every object it checks, which costs
 * 300-600 ms for a pod of 20,000 containers; this walk costs a few milliseconds.
 */

/** One step of a path: a field, a list index, or a key of a map such as annotations. */
type Step = string | number | { key: string };

/**
 * A check of one value at `path` (a stack of steps, written out only when a problem is found);
 * pushes "path must be ..." for each problem, up to MAX_PROBLEMS.
 */
type Check = (value: unknown, path: Step[], problems: string[]) => void;

const MAX_PROBLEMS = 3;
/** Characters of one map key shown in a path. */
const SHOWN_KEY = 40;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** `spec.containers[3].name`, `metadata.annotations["example.com/a"]`. */
function showPath(path: readonly Step[]): string {
  let out = 'pod';
  for (const step of path) {
    if (typeof step === 'number') out += `[${step}]`;
    else if (typeof step === 'string') out += `.${step}`;
    else out += `[${JSON.stringify(step.key.length > SHOWN_KEY ? `${step.key.slice(0, SHOWN_KEY)}…` : step.key)}]`;
  }
  return out;
}

/** A required value of a type. */
const required =
  (type: 'string' | 'number', what: string): Check =>
  (value, path, problems) => {
    if (value === undefined) problems.push(`${showPath(path)} is missing: it must be ${what}`);
    else if (typeof value !== type || (type === 'number' && !Number.isFinite(value))) problems.push(`${showPath(path)} must be ${what}, not ${kindOf(value)}`);
  };

/** Checks made by `optional`: an absent field passes them without a call. */
const optionalChecks = new WeakSet<Check>();

/** Absent or null, or else what `check` accepts. */
const optional = (check: Check): Check => {
  const optionalCheck: Check = (value, path, problems) => {
    if (value !== undefined && value !== null) check(value, path, problems);
  };
  optionalChecks.add(optionalCheck);
  return optionalCheck;
};

const object = (fields: Record<string, Check>): Check => {
  // Field names and checks as arrays: this runs once per env var of every container.
  const keys = Object.keys(fields);
  const checks = keys.map((key) => fields[key]!);
  return (value, path, problems) => {
    if (!isPlainObject(value)) {
      problems.push(`${showPath(path)} must be an object, not ${kindOf(value)}`);
      return;
    }
    for (let k = 0; k < keys.length; k++) {
      if (problems.length >= MAX_PROBLEMS) return;
      const key = keys[k]!;
      const field = Object.hasOwn(value, key) ? value[key] : undefined;
      // Absent fields of optional checks are the common case: skip the call and the path step.
      if (field === undefined && optionalChecks.has(checks[k]!)) continue;
      path.push(key);
      checks[k]!(field, path, problems);
      path.pop();
    }
  };
};

const listOf =
  (item: Check): Check =>
  (value, path, problems) => {
    if (!Array.isArray(value)) {
      problems.push(`${showPath(path)} must be a list, not ${kindOf(value)}`);
      return;
    }
    for (let i = 0; i < value.length && problems.length < MAX_PROBLEMS; i++) {
      path.push(i);
      item(value[i], path, problems);
      path.pop();
    }
  };

const mapOf =
  (entry: Check): Check =>
  (value, path, problems) => {
    if (!isPlainObject(value)) {
      problems.push(`${showPath(path)} must be an object, not ${kindOf(value)}`);
      return;
    }
    for (const key of Object.keys(value)) {
      if (problems.length >= MAX_PROBLEMS) return;
      path.push({ key });
      entry(value[key], path, problems);
      path.pop();
    }
  };

const anything: Check = () => {};
const text = optional(required('string', 'a string'));
const name = required('string', 'a string');
const stringMap = optional(mapOf(required('string', 'a string')));
const anyMap = optional(mapOf(anything));

const envVarShape = object({ name, value: text, valueFrom: anyMap });
const isOptionalString = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';

/**
 * One env var. Pods carry thousands, so the well-formed case is checked inline; anything else
 * goes through the general check, which accepts exactly what this accepts and words the problem.
 */
const envVar: Check = (value, path, problems) => {
  if (
    isPlainObject(value) &&
    Object.hasOwn(value, 'name') &&
    typeof value.name === 'string' &&
    isOptionalString(value.value) &&
    (value.valueFrom === undefined || value.valueFrom === null || isPlainObject(value.valueFrom))
  ) {
    return;
  }
  envVarShape(value, path, problems);
};

const container = object({
  name,
  env: optional(listOf(envVar)),
  volumeMounts: optional(listOf(object({ name, mountPath: required('string', 'a string') }))),
  resources: optional(object({ requests: anyMap, limits: anyMap })),
});

const requirements = optional(listOf(object({ key: name, operator: name, values: optional(listOf(name)) })));

const podShape = object({
  metadata: optional(object({ name: text, generateName: text, namespace: text, labels: stringMap, annotations: stringMap })),
  spec: optional(
    object({
      containers: optional(listOf(container)),
      initContainers: optional(listOf(container)),
      volumes: optional(listOf(object({ name, hostPath: optional(object({ path: name, type: text })) }))),
      nodeSelector: stringMap,
      tolerations: optional(listOf(object({ key: text, operator: text, value: text, effect: text, tolerationSeconds: optional(required('number', 'a number')) }))),
      priority: optional(required('number', 'a number')),
      affinity: optional(
        object({
          nodeAffinity: optional(
            object({
              requiredDuringSchedulingIgnoredDuringExecution: optional(object({ nodeSelectorTerms: optional(listOf(object({ matchExpressions: requirements, matchFields: requirements }))) })),
            }),
          ),
        }),
      ),
    }),
  ),
});

/**
 * Null when every field the injector uses has its Kubernetes type; else one sentence naming the
 * first fields that do not (at most three), as the API server's decoder would reject them.
 */
export function podShapeProblem(pod: unknown): string | null {
  const problems: string[] = [];
  podShape(pod, [], problems);
  if (problems.length === 0) return null;
  return `the pod does not have the shape of a Kubernetes Pod: ${problems.join('; ')}; send the pod as the API server encodes it`;
}
