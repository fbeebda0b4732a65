import { createHash } from 'node:crypto';

/** What one name holds: absent, or a version and its content. */
export type NameState = null | { version: number; content: Buffer };

/** One PUT or DELETE of a name, as the load sent it and what (if anything) came back. */
export interface Op {
  id: number;
  name: string;
  kind: 'put' | 'delete';
  /** The `last_modified` sent. */
  version: number;
  /** PUT only: the uncompressed content sent. */
  content?: Buffer;
  /**
   * The answer, when one came: its status and, for a PUT, the `Last-Modified` version.
   * Unset for an op the crash cut off (it may or may not have taken effect).
   */
  answer?: { status: number; version?: number | undefined };
}

type Event = { type: 'send' | 'answer'; op: Op };

interface Config {
  state: NameState;
  /** Ops sent and not applied yet. */
  pending: Op[];
}

const stateKey = (s: NameState): string =>
  s === null ? '-' : `${s.version}:${createHash('sha256').update(s.content).digest('hex')}`;

const configKey = (c: Config): string =>
  stateKey(c.state) +
  '|' +
  c.pending
    .map((o) => o.id)
    .sort((a, b) => a - b)
    .join(',');

/** The store's rules for one op (PROTOCOL.md): returns the new state and the answer it gives. */
function apply(state: NameState, op: Op): { state: NameState; status: number; version?: number } {
  if (op.kind === 'put') {
    if (state !== null && state.version > op.version) {
      return { state, status: 200, version: state.version };
    }
    return {
      state: { version: op.version, content: op.content! },
      status: 200,
      version: op.version,
    };
  }
  if (state === null) return { state, status: 404 };
  if (state.version > op.version) return { state, status: 200 };
  return { state: null, status: 200 };
}

/** An answered op may only be applied where the model gives the answer the server gave. */
function agrees(op: Op, result: ReturnType<typeof apply>): boolean {
  if (!op.answer) return true;
  if (op.answer.status !== result.status) return false;
  return op.kind !== 'put' || op.answer.version === result.version;
}

/** Every config reachable by applying pending ops, in any order, one at a time. */
function closure(configs: Map<string, Config>, limit: number): Map<string, Config> {
  const out = new Map(configs);
  const work = [...configs.values()];
  while (work.length > 0) {
    const c = work.pop()!;
    for (const op of c.pending) {
      const result = apply(c.state, op);
      if (!agrees(op, result)) continue;
      const next: Config = { state: result.state, pending: c.pending.filter((o) => o !== op) };
      const key = configKey(next);
      if (out.has(key)) continue;
      if (out.size >= limit) throw new Error(`more than ${limit} histories to follow`);
      out.set(key, next);
      work.push(next);
    }
  }
  return out;
}

/**
 * The per-name history of a load cut off by a crash, in the order the test process saw
 * sends and answers. Since an op is sent after every answer seen before it, an op answered
 * before another was sent took effect first (real-time order); ops in flight together may
 * take effect in any order; an answered op took effect exactly once, with the answer it
 * gave; an op the crash cut off took effect or not. {@link outcomes} follows every history
 * these rules allow and returns the states a name may be found in after recovery.
 */
export class CrashHistory {
  readonly #events = new Map<string, Event[]>();
  #nextId = 0;

  /** Records an op about to be sent. */
  send(op: Omit<Op, 'id' | 'answer'>): Op {
    const full: Op = { ...op, id: this.#nextId++ };
    this.#push(full.name, { type: 'send', op: full });
    return full;
  }

  /** Records the answer to `op`. */
  answer(op: Op, status: number, version?: number): void {
    op.answer = { status, version };
    this.#push(op.name, { type: 'answer', op });
  }

  #push(name: string, event: Event): void {
    const list = this.#events.get(name) ?? [];
    list.push(event);
    this.#events.set(name, list);
  }

  ops(name: string): Op[] {
    return (this.#events.get(name) ?? []).filter((e) => e.type === 'send').map((e) => e.op);
  }

  /**
   * The states `name` may hold after the crash, starting from `initial`. Throws when no
   * history explains the answers given (the server broke its rules before the crash).
   */
  outcomes(name: string, initial: NameState, limit = 200_000): NameState[] {
    let configs = new Map<string, Config>();
    const start: Config = { state: initial, pending: [] };
    configs.set(configKey(start), start);
    for (const event of this.#events.get(name) ?? []) {
      if (event.type === 'send') {
        const next = new Map<string, Config>();
        for (const c of configs.values()) {
          const n = { state: c.state, pending: [...c.pending, event.op] };
          next.set(configKey(n), n);
        }
        configs = next;
      } else {
        const next = new Map<string, Config>();
        for (const [key, c] of closure(configs, limit)) {
          if (!c.pending.includes(event.op)) next.set(key, c);
        }
        if (next.size === 0) {
          throw new Error(
            `no order of the ops on ${name} explains the answer to op ${event.op.id}: ` +
              describe(this.ops(name)),
          );
        }
        configs = next;
      }
    }
    const states = new Map<string, NameState>();
    for (const c of closure(configs, limit).values()) states.set(stateKey(c.state), c.state);
    return [...states.values()];
  }
}

/** Whether two states are the same version with the same content. */
export function sameState(a: NameState, b: NameState): boolean {
  return stateKey(a) === stateKey(b);
}

/** One line per op, for failure messages. */
export function describe(ops: Op[]): string {
  return ops
    .map(
      (o) =>
        `#${o.id} ${o.kind} v${o.version}` +
        (o.answer
          ? ` -> ${o.answer.status}${o.answer.version !== undefined ? ` v${o.answer.version}` : ''}`
          : ' (no answer)'),
    )
    .join('; ');
}

/** A state for messages. */
export function showState(s: NameState): string {
  return s === null ? 'absent' : `v${s.version} (${s.content.length} bytes)`;
}
