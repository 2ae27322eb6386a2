/**
 * An intervention in the latent space of a loaded SAE (io/sae.ts). A JumpReLU SAE becomes a
 * JumpReLUAutoencoderIntervention; a standard one an AutoencoderIntervention, whose layer is
 * pyvene's AutoencoderLayer, ReLU(W_e(x − b_dec) + b_e) then W_d z + b_dec: SAELens' standard SAE
 * with W_e = W_encᵀ, b_e = b_enc, W_d = W_decᵀ when it subtracts b_dec from its input.
 *
 * Where the SAE and the intervention differ on that subtraction, the encoder bias absorbs it, using
 * (x − b)·W + c = x·W + (c − b·W): exact algebra, with the bias rounded to float32 once, so the
 * pre-activations agree to float32 rounding rather than bit for bit.
 */
import { Tensor, transpose } from "../tensor/index.js";
import { describe } from "../options/index.js";
import type { SaeWeights } from "../io/sae.js";
import type { InterventionOptions } from "./intervention.js";
import { AutoencoderIntervention } from "./interventions/autoencoder.js";
import { JumpReLUAutoencoderIntervention } from "./interventions/jumprelu-autoencoder.js";

/** Options of the intervention other than its sizes, which the SAE fixes. */
export type SaeInterventionOptions = Omit<InterventionOptions, "embedDim" | "lowRankDimension" | "latentDim">;

/**
 * The intervention computing `sae`: JumpReLU SAEs swap latents chosen by subspaces (latent ids);
 * standard ones, as pyvene's AutoencoderIntervention, those given to setInterchangeDim([ids]).
 */
export function saeIntervention(
  sae: SaeWeights,
  options: SaeInterventionOptions = {},
): JumpReLUAutoencoderIntervention | AutoencoderIntervention {
  if (!sae || !(sae.W_enc instanceof Tensor) || !(sae.architecture === "standard" || sae.architecture === "jumprelu"))
    throw new TypeError(`saeIntervention: expected the result of loadSae, got ${describe(sae)}`);
  const { dIn, dSae } = sae;
  if (sae.architecture === "jumprelu") {
    if (!(sae.threshold instanceof Tensor)) throw new TypeError("saeIntervention: a JumpReLU SAE needs its threshold");
    const intervention = new JumpReLUAutoencoderIntervention({ ...options, embedDim: dIn, lowRankDimension: dSae });
    intervention.loadStateDict({
      W_enc: sae.W_enc,
      W_dec: sae.W_dec,
      threshold: sae.threshold,
      b_enc: sae.applyBDecToInput ? foldedEncoderBias(sae, -1) : sae.b_enc,
      b_dec: sae.b_dec,
    });
    return intervention;
  }
  const intervention = new AutoencoderIntervention({ ...options, embedDim: dIn, latentDim: dSae });
  intervention.loadStateDict({
    "autoencoder.encoder.0.weight": transpose(sae.W_enc),
    "autoencoder.encoder.0.bias": sae.applyBDecToInput ? sae.b_enc : foldedEncoderBias(sae, 1),
    "autoencoder.decoder.0.weight": transpose(sae.W_dec),
    "autoencoder.decoder.0.bias": sae.b_dec,
  });
  return intervention;
}

/** b_enc + sign · b_dec·W_enc, accumulated in float64. */
function foldedEncoderBias({ W_enc, b_enc, b_dec, dIn, dSae }: SaeWeights, sign: 1 | -1): Tensor {
  const sum = Float64Array.from(b_enc.data);
  for (let i = 0; i < dIn; i++) {
    const b = sign * b_dec.data[i];
    if (b === 0) continue;
    const row = i * dSae;
    for (let j = 0; j < dSae; j++) sum[j] += b * W_enc.data[row + j];
  }
  return new Tensor(Float32Array.from(sum), [dSae]);
}
