// Producer/consumer index over one ONNX graph, plus the generic edits surgery builds on:
// rewiring a tensor's consumers, dead-node elimination and initializer reference counting.
// Subgraphs (If/Loop bodies) may read outer tensors by name, so they count as consumers.

import { forEachGraph, GraphProto, NodeProto } from '../onnx/proto';

export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Set<string>();
  readonly graphInputs = new Set<string>();
  readonly graphOutputs = new Set<string>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer) this.initializers.add(t.name);
    for (const v of graph.input) this.graphInputs.add(v.name);
    for (const v of graph.output) this.graphOutputs.add(v.name);
    for (const n of graph.node) {
      for (const o of n.output) if (o) this.producer.set(o, n);
      for (const i of nodeReads(n)) {
        let c = this.consumers.get(i);
        if (!c) this.consumers.set(i, (c = []));
        if (!c.includes(n)) c.push(n);
      }
    }
  }

  consumersOf(t: string): NodeProto[] {
    return this.consumers.get(t) ?? [];
  }

  isUsed(t: string): boolean {
    return this.consumersOf(t).length > 0 || this.graphOutputs.has(t);
  }

  /** Nodes whose outputs `t` depends on (transitively), as a set. */
  ancestors(tensors: string[], stopAt?: Set<string>): Set<NodeProto> {
    const seen = new Set<NodeProto>();
    const stack = [...tensors];
    const visited = new Set<string>();
    while (stack.length) {
      const t = stack.pop()!;
      if (visited.has(t) || stopAt?.has(t)) continue;
      visited.add(t);
      const p = this.producer.get(t);
      if (p && !seen.has(p)) {
        seen.add(p);
        for (const i of nodeReads(p)) stack.push(i);
      }
    }
    return seen;
  }

  /** Whether tensor `t` depends on tensor `on`. */
  dependsOn(t: string, on: string): boolean {
    if (t === on) return true;
    const stack = [t];
    const visited = new Set<string>();
    while (stack.length) {
      const x = stack.pop()!;
      if (x === on) return true;
      if (visited.has(x)) continue;
      visited.add(x);
      const p = this.producer.get(x);
      if (p) for (const i of nodeReads(p)) stack.push(i);
    }
    return false;
  }

  /** Nodes reachable forward from tensors, not crossing `stopAt` tensors. */
  descendants(tensors: string[], stopAt?: Set<string>): Set<NodeProto> {
    const seen = new Set<NodeProto>();
    const stack = [...tensors];
    while (stack.length) {
      const t = stack.pop()!;
      if (stopAt?.has(t)) continue;
      for (const c of this.consumersOf(t)) {
        if (seen.has(c)) continue;
        seen.add(c);
        for (const o of c.output) if (o) stack.push(o);
      }
    }
    return seen;
  }
}

/** Tensor names a node reads, including outer-scope names read inside its subgraphs. */
export function nodeReads(n: NodeProto): string[] {
  const reads = n.input.filter((x) => x !== '');
  for (const a of n.attribute) {
    const subs = a.g ? [a.g] : a.graphs ?? [];
    for (const sg of subs) reads.push(...subgraphOuterReads(sg));
  }
  return reads;
}

function subgraphOuterReads(g: GraphProto): string[] {
  const local = new Set<string>();
  forEachGraph(g, (x) => {
    for (const t of x.initializer) local.add(t.name);
    for (const v of x.input) local.add(v.name);
    for (const n of x.node) for (const o of n.output) local.add(o);
  });
  const reads: string[] = [];
  forEachGraph(g, (x) => {
    for (const n of x.node) for (const i of n.input) if (i && !local.has(i)) reads.push(i);
    for (const o of x.output) if (!local.has(o.name)) reads.push(o.name);
  });
  return reads;
}

/** Renames every read of tensor `from` to `to` (node inputs and graph outputs). */
export function rewireConsumers(graph: GraphProto, from: string, to: string): void {
  forEachGraph(graph, (g) => {
    for (const n of g.node) {
      for (let i = 0; i < n.input.length; i++) if (n.input[i] === from) n.input[i] = to;
    }
  });
}

/**
 * Removes nodes none of whose outputs are read by anything (or are graph outputs),
 * repeatedly, so that a layer cut off from the residual stream disappears whole.
 */
export function eliminateDeadNodes(graph: GraphProto): number {
  let removed = 0;
  for (;;) {
    const idx = new GraphIndex(graph);
    const alive = graph.node.filter((n) => n.output.some((o) => o && idx.isUsed(o)));
    if (alive.length === graph.node.length) return removed;
    removed += graph.node.length - alive.length;
    graph.node = alive;
  }
}

/** Drops initializers (and graph inputs listed in `droppableInputs`) that nothing reads. */
export function dropUnusedInitializers(graph: GraphProto): string[] {
  const read = new Set<string>();
  forEachGraph(graph, (g) => {
    for (const n of g.node) for (const i of nodeReads(n)) read.add(i);
    for (const o of g.output) read.add(o.name);
  });
  const dropped: string[] = [];
  graph.initializer = graph.initializer.filter((t) => {
    if (read.has(t.name)) return true;
    dropped.push(t.name);
    return false;
  });
  // An initializer may also be listed as a graph input (old exporters); drop those entries too.
  const droppedSet = new Set(dropped);
  graph.input = graph.input.filter((v) => !droppedSet.has(v.name));
  graph.valueInfo = graph.valueInfo.filter((v) => read.has(v.name) || graph.node.some((n) => n.output.includes(v.name)));
  return dropped;
}
