/**
 * Sampling of repeated log events: at most `perSecond` lines per key in any
 * one-second window; the events in between are only counted and the count
 * rides on the next line that is let through. A flood of rejections thus
 * costs O(keys) log lines per second, whatever its rate. Time is passed in
 * (monotonic ms); no timer is involved.
 */
export class LogSampler {
  private readonly windows = new Map<
    string,
    { start: number; lines: number; suppressed: number }
  >();

  /**
   * @param perSecond lines let through per key and second
   * @param maxKeys distinct keys tracked; further keys share one slot
   */
  constructor(
    private readonly perSecond = 2,
    private readonly maxKeys = 256,
  ) {}

  /**
   * One event of `key` at `nowMs`: -1 when it must not be logged, else the
   * number of events of `key` suppressed since the last line (log it with
   * the line).
   */
  sample(key: string, nowMs: number): number {
    let k = key;
    let w = this.windows.get(k);
    if (w === undefined) {
      if (this.windows.size >= this.maxKeys) {
        k = '\u0000other';
        w = this.windows.get(k);
      }
      if (w === undefined) {
        w = { start: nowMs, lines: 0, suppressed: 0 };
        this.windows.set(k, w);
      }
    }
    if (nowMs - w.start >= 1000) {
      w.start = nowMs;
      w.lines = 0;
    }
    if (w.lines >= this.perSecond) {
      w.suppressed++;
      return -1;
    }
    w.lines++;
    const n = w.suppressed;
    w.suppressed = 0;
    return n;
  }
}
