// bloomfilter ships plain JS; the part of its API the store uses.
declare module 'bloomfilter' {
  export class BloomFilter {
    /** `m` bits, `k` hash functions. */
    constructor(m: number, k: number);
    /** Sized for `n` items at a false-positive rate of `error`. */
    static withTargetError(n: number, error: number): BloomFilter;
    readonly m: number;
    readonly k: number;
    add(value: string): void;
    /** false: certainly never added; true: probably added. */
    test(value: string): boolean;
  }
}
