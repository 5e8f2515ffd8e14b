// The text made for one scrape is written into arenas reused by later scrapes: a text must never be
// overwritten while a scrape reads it, and one that outgrew its arena gets the room next time.
import { describe, expect, it } from "vitest";
import { ScratchArenas, TextArena } from "../../src/exporters/metrics/text-arena.js";

describe("TextArena", () => {
  it("writes texts one after another into one buffer, each piece a view of it", () => {
    const arena = new TextArena(1024);
    const a = arena.write("orgwatch_x 1\n");
    const b = arena.write("ünïcode 2\n");
    expect(a.toString("utf8")).toBe("orgwatch_x 1\n");
    expect(b.toString("utf8")).toBe("ünïcode 2\n");
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + a.length);
    expect(arena.size).toBe(a.length + b.length);
  });

  it("puts what does not fit in a Buffer of its own, and has room for it after a reset", () => {
    // Below the arena's smallest size (64 KiB) nothing overflows: fill it first.
    const arena = new TextArena(0);
    const fill = arena.write("x".repeat(64 * 1024 - 2));
    const over = arena.write("abc\n");
    expect(over.buffer).not.toBe(fill.buffer);
    expect(over.toString()).toBe("abc\n");
    expect(arena.size).toBe(64 * 1024 + 2);
    arena.reset();
    expect(arena.size).toBe(0);
    const again = [arena.write("x".repeat(64 * 1024 - 2)), arena.write("abc\n")];
    expect(again[0]!.buffer).toBe(again[1]!.buffer);
  });

  it("refuses a reset while held", () => {
    const arena = new TextArena(0);
    arena.hold();
    expect(() => arena.reset()).toThrow(/still reads it/);
    arena.release();
    expect(() => arena.reset()).not.toThrow();
  });
});

describe("ScratchArenas", () => {
  it("gives a scrape an arena of its own while another is in flight, and reuses them after", () => {
    const scratch = new ScratchArenas();
    const first = scratch.take();
    const overlapping = scratch.take();
    expect(overlapping).not.toBe(first);
    expect(first.held && overlapping.held).toBe(true);
    scratch.give(first);
    scratch.give(overlapping);
    expect(scratch.spareCount).toBe(2);
    const next = scratch.take();
    expect([first, overlapping]).toContain(next);
    expect(next.size).toBe(0);
  });

  it("keeps two spare arenas at most, and each once", () => {
    const scratch = new ScratchArenas();
    const taken = [scratch.take(), scratch.take(), scratch.take()];
    for (const a of taken) scratch.give(a);
    expect(scratch.spareCount).toBe(2);
    const again = scratch.take();
    scratch.give(again);
    scratch.give(again);
    expect(scratch.spareCount).toBe(2);
  });
});
