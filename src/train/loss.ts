// The tutorial's training loss: SNR-weighted noise-prediction MSE plus a gradient penalty
// 0.02 * mean((d mean(model(x_t)) / d x_t)^2), which needs a double backward pass.
import * as td from "../engine/index.ts";

export interface LossInputs {
  /** Clean images [B,H,W,C]. */
  images: td.Tensor;
  /** Integer timesteps, length B. */
  t: Int32Array;
  /** Gaussian noise like images. */
  noise: td.Tensor;
  /** sqrt(alpha_bar) and sqrt(1 - alpha_bar) of the schedule, indexed by t (float64 values). */
  sqrtAlphaCumulative: ArrayLike<number>;
  sqrtOneMinusAlphaCumulative: ArrayLike<number>;
  /** Class labels for conditional models (-1 = unconditional). */
  labels?: Int32Array;
  /**
   * sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) per sample as [B,1,1,1] tensors in the images' dtype, instead
   * of looking them up by t on the host: a recorded step (td.captureStep) takes them as inputs.
   */
  coefficients?: { readonly alpha: td.Tensor; readonly sigma: td.Tensor };
}

export interface LossOptions {
  /** Weight of the gradient penalty; 0 turns it (and the double backward) off. The tutorial uses 0.02. */
  penaltyWeight: number;
}

export interface LossParts {
  total: td.Tensor;
  mainLoss: td.Tensor;
  gradPenalty: td.Tensor;
  /** The noisy input x_t and the weights, for inspection. */
  noisy: td.Tensor;
  weights: td.Tensor;
}

export type NoisePredictor<P> = (params: P, x: td.Tensor, t: Int32Array, labels?: Int32Array) => td.Tensor;

/** Per-sample coefficients as a [B,1,1,1] tensor (rounded to the images' dtype, like JAX's gather). */
function perSample(values: ArrayLike<number>, t: Int32Array, like: td.Tensor): td.Tensor {
  const picked = Array.from(t, (s) => values[s]!);
  return td.tensor(picked, [t.length, 1, 1, 1], like.dtype);
}

export function diffusionLoss<P>(model: NoisePredictor<P>, params: P, inputs: LossInputs, options: LossOptions): LossParts {
  const { images, t, noise } = inputs;
  const a = inputs.coefficients?.alpha ?? perSample(inputs.sqrtAlphaCumulative, t, images);
  const s = inputs.coefficients?.sigma ?? perSample(inputs.sqrtOneMinusAlphaCumulative, t, images);
  // x_t is built outside the graph: it is a leaf we differentiate with respect to for the penalty.
  const noisy = td.noGrad(() => td.add(td.mul(a, images), td.mul(s, noise)));
  const penaltyOn = options.penaltyWeight !== 0;
  if (penaltyOn) noisy.requiresGrad = true;
  try {
    const predicted = model(params, noisy, t, inputs.labels);
    // The tutorial's "SNR" weight: snr = sqrt(abar)/sqrt(1-abar), w = snr / (1 + snr).
    const snr = td.div(a, s);
    const weights = td.div(snr, td.add(snr, 1));
    const mainLoss = td.mean(td.mul(weights, td.square(td.sub(noise, predicted))));
    let gradPenalty = td.scalar(0, images.dtype);
    if (penaltyOn) {
      // The tutorial evaluates the model a second time inside jax.grad; the same forward is reused here.
      const [gradX] = td.gradients(td.mean(predicted), [noisy], { createGraph: true });
      gradPenalty = td.mul(options.penaltyWeight, td.mean(td.square(gradX!)));
    }
    return { total: td.add(mainLoss, gradPenalty), mainLoss, gradPenalty, noisy, weights: td.reshape(weights, [t.length]) };
  } finally {
    noisy.requiresGrad = false;
  }
}
