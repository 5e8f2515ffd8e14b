// The tasks in memory and what persistence needs of them: the records by id and by stream
// sequence, the open ones, what changed since the last save (sources/chain-store.ts writes it), and
// how far each task stream has been read. The lifecycle and chain linking share one store.
import { refKey, type ReadProgress, type TaskRecord } from "./records.js";

export class TaskStore {
  readonly tasks = new Map<string, TaskRecord>();
  readonly bySequence = new Map<string, string>();
  /** Tasks not exported yet. */
  readonly open = new Set<string>();
  /** Tasks changed since the last settle: a settle after a message looks at these only. */
  readonly touched = new Set<string>();
  /** Tasks changed since the last takeDirty() (persistence). */
  private readonly dirty = new Set<string>();
  /** Highest stream sequence observed per task stream (where the observer resumes). */
  private readonly cursors = new Map<string, number>();
  private readonly dirtyCursors = new Set<string>();
  /** How far each task stream has been read by this process (see ChainLinks.parentMayStillBeRead). */
  readonly progress = new Map<string, ReadProgress>();
  /** Chain state is saved (sources/chain-store.ts): whenSaved() waits for it. */
  persisted = false;
  /** Callers of whenSaved() since the last takeDirty(). */
  private saveWaiters: (() => void)[] = [];

  bySeq(stream: string, seq: number): TaskRecord | undefined {
    const id = this.bySequence.get(refKey(stream, seq));
    return id === undefined ? undefined : this.tasks.get(id);
  }

  markDirty(task: TaskRecord): void {
    this.dirty.add(task.taskId);
    this.touched.add(task.taskId);
  }

  /** Everything is to be written again (a replica that took over writes its whole state). */
  markAllDirty(): void {
    for (const id of this.tasks.keys()) this.dirty.add(id);
    for (const stream of this.cursors.keys()) this.dirtyCursors.add(stream);
  }

  cursor(stream: string): number | undefined {
    return this.cursors.get(stream);
  }

  hasCursor(stream: string): boolean {
    return this.cursors.has(stream);
  }

  advanceCursor(stream: string, seq: number): void {
    const cursor = this.cursors.get(stream);
    if (cursor === undefined || cursor < seq) {
      this.cursors.set(stream, seq);
      this.dirtyCursors.add(stream);
    }
  }

  /** Cursors restored at start are saved already. */
  cursorsSaved(): void {
    this.dirtyCursors.clear();
  }

  noteRead(stream: string, seq: number, storedMs: number | undefined, atEnd: boolean): void {
    this.advanceCursor(stream, seq);
    if (storedMs !== undefined) {
      const p = this.progress.get(stream);
      this.progress.set(stream, {
        throughMs: Math.max(p?.throughMs ?? 0, storedMs),
        atEnd,
        readAtMs: Date.now(),
      });
    }
  }

  /**
   * The stream's last sequence, asked at `askedAtMs`: when this process has read up to it, every
   * message stored before that moment has been read.
   */
  noteReadToEnd(stream: string, lastSequence: number, askedAtMs: number): void {
    if ((this.cursor(stream) ?? 0) < lastSequence) return;
    const p = this.progress.get(stream);
    this.progress.set(stream, {
      throughMs: p?.throughMs ?? 0,
      atEnd: true,
      readAtMs: Math.max(p?.atEnd ? p.readAtMs : 0, askedAtMs),
    });
  }

  whenSaved(): Promise<void> {
    if (!this.persisted) return Promise.resolve();
    return new Promise((resolve) => this.saveWaiters.push(resolve));
  }

  takeDirty(): { tasks: TaskRecord[]; cursors: [string, number][]; saved: (() => void)[] } {
    const tasks: TaskRecord[] = [];
    for (const id of this.dirty) {
      const t = this.tasks.get(id);
      if (t) tasks.push(t);
    }
    this.dirty.clear();
    const cursors: [string, number][] = [];
    for (const stream of this.dirtyCursors) cursors.push([stream, this.cursors.get(stream)!]);
    this.dirtyCursors.clear();
    const saved = this.saveWaiters;
    this.saveWaiters = [];
    return { tasks, cursors, saved };
  }
}
