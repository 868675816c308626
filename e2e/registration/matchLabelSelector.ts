/**
 * Kubernetes label selector semantics (metav1.LabelSelector), as the API server applies a
 * webhook's namespaceSelector and objectSelector: every matchLabels pair and every
 * matchExpressions requirement must hold; an empty or missing selector matches everything.
 */
export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export class InvalidLabelSelector extends Error {
  override readonly name = 'InvalidLabelSelector';
}

function requirementHolds(req: LabelSelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      if (values.length === 0) throw new InvalidLabelSelector(`operator In on key ${req.key} needs at least one value`);
      return has && values.includes(labels[req.key] as string);
    case 'NotIn':
      if (values.length === 0) throw new InvalidLabelSelector(`operator NotIn on key ${req.key} needs at least one value`);
      // A missing key satisfies NotIn.
      return !has || !values.includes(labels[req.key] as string);
    case 'Exists':
      if (values.length > 0) throw new InvalidLabelSelector(`operator Exists on key ${req.key} takes no values`);
      return has;
    case 'DoesNotExist':
      if (values.length > 0) throw new InvalidLabelSelector(`operator DoesNotExist on key ${req.key} takes no values`);
      return !has;
    default:
      throw new InvalidLabelSelector(`unknown selector operator ${String((req as { operator: unknown }).operator)} on key ${req.key}`);
  }
}

/** Whether the labels satisfy the selector. Throws InvalidLabelSelector for a selector the API server would refuse. */
export function matchesLabelSelector(selector: LabelSelector | undefined, labels: Record<string, string> = {}): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((req) => requirementHolds(req, labels));
}
