// Memory for the text made anew at each scrape, reused by the next scrape. Encoded into Buffers of
// their own, such text waits for a major garbage collection to be freed (the wrappers are small;
// V8 does not hurry), and resident memory carried tens of MB of earlier scrapes' text.

/** utf8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_BYTES_PER_UNIT = 3;

/** Room for the first text when nothing says its size yet; an arena grows to fit at its next use. */
const INITIAL_BYTES = 64 * 1024;

export class TextArena {
  private buffer: Buffer;
  private used = 0;
  /** Bytes that did not fit (written to Buffers of their own): the next text gets the room. */
  private overflow = 0;
  private readers = 0;

  constructor(bytes: number) {
    this.buffer = Buffer.allocUnsafeSlow(Math.max(bytes, INITIAL_BYTES));
  }

  /** The room the arena has before a text overflows it (tests). */
  get capacity(): number {
    return this.buffer.length;
  }

  /** The bytes written since the last `reset()`, overflow included. */
  get size(): number {
    return this.used + this.overflow;
  }

  /** A scrape (or a gzip encoding) is reading what was written: it must not be overwritten. */
  get held(): boolean {
    return this.readers > 0;
  }

  hold(): void {
    this.readers++;
  }

  release(): void {
    if (this.readers > 0) this.readers--;
  }

  /** Starts a new text over the old one; grows first if the old one did not fit. Only when not held. */
  reset(): void {
    if (this.held) throw new Error("a text arena was reset while a scrape still reads it");
    if (this.overflow > 0) this.buffer = Buffer.allocUnsafeSlow(Math.ceil(this.size * 1.1));
    this.used = 0;
    this.overflow = 0;
  }

  /** The text's bytes: a view of the arena while it has room, else a Buffer of their own. */
  write(text: string): Buffer {
    const room = this.buffer.length - this.used;
    if (text.length * MAX_UTF8_BYTES_PER_UNIT <= room || Buffer.byteLength(text, "utf8") <= room) {
      const written = this.buffer.write(text, this.used, "utf8");
      const bytes = this.buffer.subarray(this.used, this.used + written);
      this.used += written;
      return bytes;
    }
    const bytes = Buffer.from(text, "utf8");
    this.overflow += bytes.length;
    return bytes;
  }
}

/** Arenas kept for reuse beyond those in use: scrapes rarely overlap (Prometheus and a person). */
const SPARE_SCRATCH_ARENAS = 2;

/**
 * Arenas for the text made anew at each scrape (the ages of unacknowledged work, prom-client's
 * families): one per scrape in flight, reused by the next. Encoded into a new Buffer each time, that
 * text (~0.6 MB at 10,000 consumers) outlived the scavenges of the response's writing, and between
 * two polls resident memory grew by 40 MB of such Buffers waiting for a major collection.
 */
export class ScratchArenas {
  private readonly spare: TextArena[] = [];

  /** An empty arena, held until `give()`. */
  take(): TextArena {
    const arena = this.spare.pop() ?? new TextArena(0);
    arena.reset();
    arena.hold();
    return arena;
  }

  /** Back once nothing reads what was written in it (the response is over). */
  give(arena: TextArena): void {
    arena.release();
    if (!arena.held && this.spare.length < SPARE_SCRATCH_ARENAS && !this.spare.includes(arena))
      this.spare.push(arena);
  }

  /** Arenas waiting to be reused (tests). */
  get spareCount(): number {
    return this.spare.length;
  }
}
