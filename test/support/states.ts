/**
 * Records a supervisor's states and waits for the next one matching a predicate (event driven,
 * bounded by a real-time deadline).
 */
import type { AgentState } from "../../src/agent/supervisor.ts";

export class StateLog {
  readonly all: AgentState[] = [];
  private cursor = 0;
  private wake: (() => void) | null = null;

  readonly push = (s: AgentState): void => {
    this.all.push(s);
    this.wake?.();
  };

  /** The next state (after the last one returned) matching `pred`; throws after `timeoutMs`. */
  async next<S extends AgentState["state"]>(state: S, pred: (s: Extract<AgentState, { state: S }>) => boolean = () => true, timeoutMs = 10_000): Promise<Extract<AgentState, { state: S }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.all.length) {
        const s = this.all[this.cursor++]!;
        if (s.state === state && pred(s as Extract<AgentState, { state: S }>)) return s as Extract<AgentState, { state: S }>;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${state}" state within ${timeoutMs} ms; saw ${JSON.stringify(this.all.map((x) => x.state))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** States of one kind seen so far. */
  of<S extends AgentState["state"]>(state: S): Extract<AgentState, { state: S }>[] {
    return this.all.filter((s) => s.state === state) as Extract<AgentState, { state: S }>[];
  }
}
