/** Builds a fresh strategy (with empty bookkeeping) by name. */
import type { PlacementConfig } from '../../domain/slot.js';
import type { SimGpu } from '../cluster.js';
import { MetricsOnlyStrategy } from './metricsOnlyStrategy.js';
import { MpsInjectorStrategy } from './mpsInjectorStrategy.js';
import { StrategyName } from './placementStrategy.js';
import type { ObserveRule, PlacementStrategy } from './placementStrategy.js';
import { EqualSplitStrategy, TimeSlicingStrategy } from './replicaStrategies.js';

export interface StrategyContext {
  gpus: readonly SimGpu[];
  placement: PlacementConfig;
  replicasPerGpu: number;
  reservationTtlMs: number;
  observeRule?: ObserveRule;
}

export function createStrategy(name: StrategyName, context: StrategyContext): PlacementStrategy {
  switch (name) {
    case StrategyName.MpsInjector:
      return new MpsInjectorStrategy(context.placement, context.reservationTtlMs, context.observeRule);
    case StrategyName.MetricsOnly:
      return new MetricsOnlyStrategy();
    case StrategyName.EqualSplit:
      return new EqualSplitStrategy(context.gpus, context.replicasPerGpu, context.placement.policy);
    case StrategyName.TimeSlicing:
      return new TimeSlicingStrategy(context.gpus, context.replicasPerGpu, context.placement.policy);
  }
}
