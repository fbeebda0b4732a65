/**
 * A linearizability check (Wing & Gong, with Lowe's memoization) of the history of one
 * name: did the answers the clients got come from applying the operations one at a time,
 * each at some instant between its request and its response? Used to compute what a name
 * must hold after concurrent PUT/DELETE/GET without fixing an order in advance.
 */

/** The state of one name: absent, or a version and which content it holds. */
export type NameState = { version: number; content: string } | null;

export interface HistoryOp {
  /**
   * Client-side time the request was started and the response fully read; `ret` is
   * Infinity for an op whose outcome is unknown (see {@link unknownOutcome}).
   */
  call: number;
  ret: number;
  /**
   * The state after this operation applied to `state`, or `undefined` when the answer the
   * client got is impossible in `state`.
   */
  apply(state: NameState): NameState | undefined;
}

/** PUT: an equal or older stored version is replaced; the answer names the version after. */
export function putOp(
  call: number,
  ret: number,
  version: number,
  content: string,
  answered: { status: number; version: number | undefined },
): HistoryOp {
  return {
    call,
    ret,
    apply(state) {
      if (answered.status !== 200) return undefined;
      const next = putEffect(version, content)(state);
      return answered.version === next.version ? next : undefined;
    },
  };
}

/** DELETE: 404 when absent; removes unless the stored version is newer. */
export function deleteOp(call: number, ret: number, version: number, status: number): HistoryOp {
  return {
    call,
    ret,
    apply(state) {
      if (state === null) return status === 404 ? null : undefined;
      if (status !== 200) return undefined;
      return state.version <= version ? null : state;
    },
  };
}

/**
 * A write whose answer says nothing of its outcome (a 503 after a timeout, a connection
 * cut off): it took effect at some instant after `call`, or never. `applied` is the op as
 * if it had been answered, whose answer check is not made.
 */
export function unknownOutcome(call: number, applied: (state: NameState) => NameState): HistoryOp {
  return { call, ret: Infinity, apply: applied };
}

/** The effect of a PUT of `version` with `content` (max-version rule), answer unchecked. */
export const putEffect =
  (version: number, content: string) =>
  (state: NameState): NonNullable<NameState> =>
    state === null || state.version <= version ? { version, content } : state;

/** The effect of a DELETE of `version`, answer unchecked. */
export const deleteEffect =
  (version: number) =>
  (state: NameState): NameState =>
    state !== null && state.version > version ? state : null;

/** GET or HEAD: what the reader saw (null for 404). */
export function readOp(call: number, ret: number, seen: NameState): HistoryOp {
  return {
    call,
    ret,
    apply(state) {
      if (state === null || seen === null) return state === seen ? state : undefined;
      return state.version === seen.version && state.content === seen.content ? state : undefined;
    },
  };
}

interface Entry {
  op: number;
  isCall: boolean;
  prev: Entry | undefined;
  next: Entry | undefined;
  match: Entry | undefined;
}

const key = (s: NameState): string => (s === null ? '-' : `${s.version}:${s.content}`);

/**
 * Whether `ops`, starting from `initial`, is linearizable: every op with an answer placed
 * between its call and its return, ops of unknown outcome (ret Infinity) placed after their
 * call or left out. Throws when the search exceeds
 * `maxSteps` (a history too concurrent to decide), so a slow check fails loudly.
 */
export function isLinearizable(
  ops: HistoryOp[],
  initial: NameState,
  maxSteps = 5_000_000,
): boolean {
  const events: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, prev: undefined, next: undefined, match: undefined };
    const ret: Entry = { op: i, isCall: false, prev: undefined, next: undefined, match: undefined };
    call.match = ret;
    events.push(call, ret);
  });
  // On equal times, calls first: that allows more orders, never fewer.
  const time = (e: Entry): number => (e.isCall ? ops[e.op]!.call : ops[e.op]!.ret);
  events.sort((a, b) => time(a) - time(b) || Number(b.isCall) - Number(a.isCall));
  const head: Entry = { op: -1, isCall: false, prev: undefined, next: undefined, match: undefined };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  const lift = (e: Entry): void => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry): void => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  // Ops of unknown outcome need not be placed: done once every other op is.
  const required = ops.filter((op) => op.ret !== Infinity).length;
  let placed = 0;
  const count = (op: number, by: number): void => {
    if (ops[op]!.ret !== Infinity) placed += by;
  };
  const done = new Uint8Array(Math.ceil(ops.length / 8));
  const seen = new Set<string>();
  const stack: { entry: Entry; state: NameState }[] = [];
  let state = initial;
  let entry = head.next;
  let steps = 0;
  while (placed < required) {
    if (++steps > maxSteps)
      throw new Error(`linearizability check gave up after ${maxSteps} steps`);
    if (!entry) return false;
    if (entry.isCall) {
      const next = ops[entry.op]!.apply(state);
      if (next !== undefined) {
        done[entry.op >> 3]! |= 1 << (entry.op & 7);
        const k = Buffer.from(done).toString('latin1') + key(next);
        if (!seen.has(k)) {
          seen.add(k);
          stack.push({ entry, state });
          state = next;
          lift(entry);
          count(entry.op, 1);
          entry = head.next;
          continue;
        }
        done[entry.op >> 3]! &= ~(1 << (entry.op & 7));
      }
      entry = entry.next;
    } else {
      // A response is due for an operation not placed yet: undo the last choice.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      done[top.entry.op >> 3]! &= ~(1 << (top.entry.op & 7));
      unlift(top.entry);
      count(top.entry.op, -1);
      entry = top.entry.next;
    }
  }
  return true;
}
