/** A tiny typed event emitter. A throwing listener is reported on stderr and never breaks the emitter. */
export class Emitter<E extends { [K in keyof E]: (...args: never[]) => void }> {
  private readonly listeners = new Map<keyof E, Set<E[keyof E]>>();

  on<K extends keyof E>(event: K, fn: E[K]): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return this;
  }

  off<K extends keyof E>(event: K, fn: E[K]): this {
    this.listeners.get(event)?.delete(fn);
    return this;
  }

  once<K extends keyof E>(event: K, fn: E[K]): this {
    const wrap = ((...args: Parameters<E[K]>) => {
      this.off(event, wrap);
      (fn as (...a: Parameters<E[K]>) => void)(...args);
    }) as unknown as E[K];
    return this.on(event, wrap);
  }

  listenerCount(event: keyof E): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): boolean {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return false;
    for (const fn of [...set]) {
      try {
        (fn as (...a: Parameters<E[K]>) => void)(...args);
      } catch (err) {
        console.error(`listener for "${String(event)}" threw:`, err);
      }
    }
    return true;
  }
}
