// Linking a task to the task that caused it, strongest evidence first: a `traceparent` header (the
// span joins the publisher's trace), a `parent_task_id` field, or inference from on_complete: a task
// published to a parent's `on_complete.publish_to` close to the moment that parent completed. An
// inferred link is made only when exactly one candidate fits, so two chains running at once through
// the same agents are never crossed: when both could be the parent, neither is.

export type LinkKind = "traceparent" | "parent_task_id" | "inferred";

export interface InferenceChild {
  readonly subject: string;
  readonly stream: string;
  readonly streamSequence: number;
  readonly publishedMs: number;
}

export interface InferenceCandidate {
  readonly taskId: string;
  readonly onCompletePublishTo: string | undefined;
  readonly stream: string;
  readonly streamSequence: number;
  readonly publishedMs: number;
  /** When it ended; undefined while open. */
  readonly doneMs: number | undefined;
  readonly completed: boolean;
  /**
   * Its on_complete follow-up is already accounted for: a task linked to it on that subject, or an
   * ambiguous decision it took part in.
   */
  readonly followUpKnown: boolean;
}

export type InferenceDecision =
  | { readonly kind: "link"; readonly parentTaskId: string }
  /** No parent now or ever: the task starts a chain of its own. */
  | { readonly kind: "none"; readonly reason: "no_candidate" }
  /**
   * Several parents fit: none is chosen. Those parents' follow-ups are taken to be among the tasks
   * that met this ambiguity, so they are no longer candidates for later tasks either.
   */
  | { readonly kind: "ambiguous"; readonly candidateTaskIds: readonly string[] }
  /** A task still open might yet turn out to be the parent: decide later. */
  | { readonly kind: "wait" };

/**
 * Whether `candidate` was published before `child`. On one stream the sequence says so; across
 * streams only the stored times can, and they are whole milliseconds: a parent and a follow-up
 * published within one share it. (Taking "same millisecond" as "before" on one stream linked a task
 * to the one published right after it.)
 */
function publishedBefore(candidate: InferenceCandidate, child: InferenceChild): boolean {
  if (candidate.stream === child.stream) return candidate.streamSequence < child.streamSequence;
  return candidate.publishedMs <= child.publishedMs;
}

/**
 * Whether `candidate` fits `child`: it publishes its follow-up to the child's subject, was published
 * before it (publishedBefore), completed, and completed within `windowMs` of the child's publication. The window is
 * taken on both sides of the completion: orgwatch may learn of a completion only at the next poll
 * (after the follow-up was published), and agents may publish the follow-up just before acking.
 */
export function fits(child: InferenceChild, candidate: InferenceCandidate, windowMs: number): boolean {
  return (
    candidate.onCompletePublishTo === child.subject &&
    !candidate.followUpKnown &&
    publishedBefore(candidate, child) &&
    candidate.completed &&
    candidate.doneMs !== undefined &&
    Math.abs(child.publishedMs - candidate.doneMs) <= windowMs
  );
}

/** Still open, and could fit if it completed now (while the window after the child is open). */
function mayYetFit(
  child: InferenceChild,
  candidate: InferenceCandidate,
  windowMs: number,
  nowMs: number,
): boolean {
  return (
    candidate.onCompletePublishTo === child.subject &&
    !candidate.followUpKnown &&
    publishedBefore(candidate, child) &&
    candidate.doneMs === undefined &&
    nowMs <= child.publishedMs + windowMs
  );
}

/**
 * The inference decision for a task with no explicit link. `final` forces a decision now (the task
 * itself ended and its span is about to be exported): open candidates are then ignored.
 */
export function inferParent(
  child: InferenceChild,
  candidates: Iterable<InferenceCandidate>,
  windowMs: number,
  nowMs: number,
  final: boolean,
): InferenceDecision {
  const fitting: string[] = [];
  let openCount = 0;
  for (const c of candidates) {
    if (fits(child, c, windowMs)) {
      fitting.push(c.taskId);
    } else if (!final && mayYetFit(child, c, windowMs, nowMs)) {
      openCount++;
    }
  }
  if (fitting.length > 1) return { kind: "ambiguous", candidateTaskIds: fitting };
  if (openCount > 0) return { kind: "wait" };
  if (fitting.length === 1) return { kind: "link", parentTaskId: fitting[0]! };
  return { kind: "none", reason: "no_candidate" };
}
