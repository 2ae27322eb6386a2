/**
 * Seeded random numbers. The generator is xoshiro128** (Blackman & Vigna) with its 128-bit state
 * filled from the seed by SplitMix32; uniforms use the top 24 bits of each output
 * (u = (x >>> 8) / 2^24, in [0, 1)); normals use Box–Muller on two uniforms, the first mapped to
 * (0, 1] so the logarithm is finite. The same seed gives the same numbers on every platform.
 */
export class Generator {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spareNormal: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    if (!Number.isInteger(seed)) throw new TypeError(`Generator: seed must be an integer, got ${seed}`);
    let x = seed >>> 0;
    const splitmix = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
    this.spareNormal = null;
    return this;
  }

  /** The next 32-bit unsigned output. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The generator used when an op is not given one; reseed it with `manualSeed`. */
export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

/**
 * pyvene's set_seed (which seeds Python's, NumPy's and torch's generators): reseeds the default
 * generator, which every draw without a generator of its own uses (randn, rand, initial
 * intervention weights, sampled generation, CausalModel sampling). NoiseIntervention's default
 * noise comes from its own Generator(1), as pyvene's from NumPy's RandomState(1).
 */
export const setSeed: (seed: number) => void = manualSeed;
