// Seeded pseudo-random numbers for the synthetic fixtures: sfc32 (small, good enough for
// random weights), seeded through splitmix32 so that nearby seeds give unrelated streams;
// bulk fills use a xorshift32 stream seeded from it, one per tensor.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | string = 1234) {
    let s = typeof seed === 'string' ? hashString(seed) : seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Approximately standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Fills `out` with uniform values in [lo, hi). The bulk stream is a xorshift32 generator
   * seeded from this one (about 2 ns per element, so a 0.5B-parameter model fills in about a
   * second); its period (2^32 - 1) is far longer than any one tensor.
   */
  fillUniform<T extends Float32Array | Float64Array>(out: T, lo: number, hi: number): T {
    if (out instanceof Float32Array) fillXorshift32(out, lo, hi, this.nextU32() || 0x6d2b79f5);
    else for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** A new Float32Array of n uniform values with mean 0 and standard deviation `std`. */
  float32(n: number, std: number, mean = 0): Float32Array {
    const half = std * Math.sqrt(3);
    return this.fillUniform(new Float32Array(n), mean - half, mean + half);
  }
}

function fillXorshift32(out: Float32Array, lo: number, hi: number, seed: number): void {
  let x = seed | 0;
  const scale = (hi - lo) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = lo + (x >>> 0) * scale;
  }
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
