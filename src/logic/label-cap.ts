// Label values taken from message contents (event types, roles) are capped: the first `max`
// distinct values are kept, later ones become "other" and are counted as overflow, so a hostile or
// buggy publisher cannot blow up Prometheus' series count.

export const OVERFLOW_VALUE = "other";

/** Printable, short, no control characters: anything else is not used as a label at all. */
const SAFE_LABEL = /^[\x21-\x7e]{1,64}$/;

export function isSafeLabelValue(value: string): boolean {
  return SAFE_LABEL.test(value);
}

export class LabelCap {
  private readonly admitted = new Set<string>();

  constructor(
    private readonly max: number,
    private readonly onOverflow: () => void,
  ) {}

  /** The value to use as a label: itself when admitted, "other" when over the cap or unsafe. */
  admit(value: string): string {
    const label = this.admitQuietly(value);
    if (!this.admitted.has(value)) this.onOverflow();
    return label;
  }

  /**
   * Like admit, without counting a refusal: for values looked at again and again (every role at
   * every scrape), whose overflow is counted once per message carrying them, where it arrives.
   */
  admitQuietly(value: string): string {
    if (this.admitted.has(value)) return value;
    if (!isSafeLabelValue(value) || this.admitted.size >= this.max) return OVERFLOW_VALUE;
    this.admitted.add(value);
    return value;
  }

  get size(): number {
    return this.admitted.size;
  }
}
