/**
 * Per-tunnel request rate: a token bucket per tunnel (per gateway instance), refilled continuously.
 * `take` answers 0 when a request may pass, else the seconds until one token is back (Retry-After).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  take(key: string, perSecond: number, burst: number): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= 100_000) this.buckets.clear();
      this.buckets.set(key, (b = { tokens: burst, at: t }));
    }
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * perSecond);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
  }
}
