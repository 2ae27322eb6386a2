/**
 * Reverse-mode autograd. An op that produced a tensor from inputs needing a gradient records a
 * `GradNode`: its inputs and a rule mapping the output's gradient to each input's. Gradients are
 * raw Float32Arrays shaped like the tensor they belong to; backward rules run on kernels, not on
 * recorded ops, so a backward pass never grows the graph.
 */
import type { Tensor } from "./tensor.js";

export interface GradNode {
  readonly inputs: readonly Tensor[];
  /** One gradient per input, or null where the input needs none (or gets none). */
  backward(grad: Float32Array): readonly (Float32Array | null)[];
}

let gradDisabledDepth = 0;

export function isGradEnabled(): boolean {
  return gradDisabledDepth === 0;
}

/** Runs `fn` without recording gradients (PyTorch's `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  gradDisabledDepth++;
  try {
    return fn();
  } finally {
    gradDisabledDepth--;
  }
}

/** Marks `out` as computed from `inputs` by `backward`'s rule when any input needs a gradient. */
export function record(out: Tensor, inputs: readonly Tensor[], backward: GradNode["backward"]): Tensor {
  if (gradDisabledDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { inputs, backward };
  }
  return out;
}

const freedNode: GradNode = {
  inputs: [],
  backward() {
    throw new Error(
      "backward: this graph was already used by a backward() call and freed; " +
        "pass { retainGraph: true } to the first call to reuse it",
    );
  },
};

/** Tensors reachable from `root` through recorded nodes, each after everything that uses it. */
function reverseTopologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const child = inputs[next];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

interface PendingGrad {
  grad: Float32Array;
  /** Whether `grad` is ours to add into; a rule may hand back an array that another tensor shares. */
  owned: boolean;
}

export function runBackward(root: Tensor, seed: Float32Array, retainGraph: boolean): void {
  const pending = new Map<Tensor, PendingGrad>([[root, { grad: seed, owned: false }]]);
  for (const t of reverseTopologicalOrder(root)) {
    const entry = pending.get(t);
    if (!entry) continue;
    pending.delete(t);
    const node = t.node;
    if (node === null) {
      t.accumulateGrad(entry.grad);
      continue;
    }
    const grads = node.backward(entry.grad);
    if (!retainGraph) t.node = freedNode;
    node.inputs.forEach((input, i) => {
      const g = grads[i];
      if (!g || !input.requiresGrad) return;
      const existing = pending.get(input);
      if (!existing) {
        pending.set(input, { grad: g, owned: false });
        return;
      }
      if (!existing.owned) {
        existing.grad = existing.grad.slice();
        existing.owned = true;
      }
      const acc = existing.grad;
      for (let j = 0; j < acc.length; j++) acc[j] += g[j];
    });
  }
}
