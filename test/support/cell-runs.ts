/**
 * One cell of a trace or patch grid recomputed through the public IntervenableModel alone, as a
 * pyvene user would: a Collect run reads the restored run's component at the cell's position, then
 * one run with lambda interventions writes it at each restored layer (after adding the noise at
 * the subject's embeddings, for a trace). The truth the sweeps' cell runs are checked against.
 */
import * as tv from "../../src/index.js";

export interface CellQuestion {
  /** The run that is patched (the prompt of a trace, the base of a patching). */
  patched: number[];
  /** The run the written values come from (the same prompt unnoised, or the source prompt). */
  restored: number[];
  component: string;
  layers: number[];
  position: number;
  /** For a trace: noise [corrupted positions, width] added to the embeddings at those positions. */
  corruption?: { positions: number[]; noise: tv.Tensor };
}

/** Probabilities over the vocabulary at the last position of the patched run with the cell restored. */
export function cellProbabilities(model: tv.PretrainedModel, q: CellQuestion): Float32Array {
  const input = (ids: number[]) => ({ inputIds: tv.intTensor([ids]) });
  const collector = new tv.IntervenableModel(
    q.layers.map((layer) => ({ layer, component: q.component, interventionType: tv.CollectIntervention })),
    model,
  );
  const { collected } = collector.forward(input(q.restored), null, {
    unitLocations: { base: q.layers.map(() => [[q.position]]) },
  });
  const noise = q.corruption?.noise;
  const corrupt = noise
    ? [{ layer: 0, component: "block_input", intervention: (b: tv.Tensor) => tv.add(b, noise) }]
    : [];
  const writes = q.layers.map((layer, i) => ({ layer, component: q.component, intervention: () => collected[i] }));
  const im = new tv.IntervenableModel([...corrupt, ...writes], model);
  const locations = [...(q.corruption ? [[q.corruption.positions]] : []), ...q.layers.map(() => [[q.position]])];
  const { intervened } = im.forward(input(q.patched), null, { unitLocations: { base: locations } });
  const [, length, vocab] = intervened.logits.shape;
  return tv.softmax(intervened.logits, -1).data.slice((length - 1) * vocab, length * vocab);
}
