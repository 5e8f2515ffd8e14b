// Seeded randomness for the simulated organization. Every decision draws from a generator keyed by
// the seed and by what is being decided (a role's assignment schedule, one delivery of one task), so
// the same seed gives the same tasks in the same streams however the agents' timers interleave.
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";

export interface Random {
  /** A whole number in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** `length` lower-case hex digits. */
  hex(length: number): string;
}

/** FNV-1a: turns the seed and the decision's key into the generator's 32-bit seed. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export function seededRandom(seed: number, ...key: (string | number)[]): Random {
  const rng = xoroshiro128plus(hash32([seed, ...key].join("\u0000")));
  const int = (min: number, max: number) => uniformInt(rng, min, max);
  return {
    int,
    chance: (p) => int(0, 999_999) < p * 1_000_000,
    pick: (items) => items[int(0, items.length - 1)]!,
    hex: (length) => {
      let out = "";
      while (out.length < length) out += int(0, 0xffff).toString(16).padStart(4, "0");
      return out.slice(0, length);
    },
  };
}
