/**
 * The inventory placement decides on: the DCGM metrics, with the node states the cluster
 * integration knows (cordons, taints) laid over the metrics' own.
 */
import type { GpuInventory } from '../domain/inventory.js';

/**
 * A reader of the merged inventory that builds it again only when the metrics or the node
 * table change, not per admission: a fresh copy each time would copy the node table and
 * give every node lookup of the placement pass a newly built object. Without cluster nodes
 * the metrics inventory is returned as it is.
 */
export function mergedInventory(metrics: () => GpuInventory, clusterNodes: () => GpuInventory['nodes']): () => GpuInventory {
  let last: { metrics: GpuInventory; nodes: GpuInventory['nodes']; inventory: GpuInventory } | undefined;
  return () => {
    const current = metrics();
    const nodes = clusterNodes();
    if (last?.metrics !== current || last.nodes !== nodes) {
      const inventory = Object.keys(nodes).length === 0 ? current : { ...current, nodes: { ...current.nodes, ...nodes } };
      last = { metrics: current, nodes, inventory };
    }
    return last.inventory;
  };
}
