/**
 * Rate limit of the `Error` replies one connection gets (issue 12 item 2):
 * a burst of `burst` replies, then `perSec` per second. A rejection that
 * finds no token is counted instead, and the next reply that is sent stands
 * for it too (`count`). Used by client signalling connections, hub
 * connections and federation control links.
 */
import { TokenBucket } from './token-bucket.js';

export class ErrorReplyLimiter {
  private readonly bucket: TokenBucket;
  private suppressed = 0;

  constructor(burst: number, perSec = 1, now = performance.now()) {
    this.bucket = new TokenBucket(perSec, burst, now);
  }

  /**
   * One rejection at `now`. Returns how many rejections the reply to send
   * now stands for (this one and every suppressed one since the last reply),
   * or 0 when no reply may be sent (the rejection is counted for the next).
   * `force` (a closing rejection) always gets its reply.
   */
  admit(now: number, force = false): number {
    if (this.bucket.take(now) || force) {
      const n = this.suppressed + 1;
      this.suppressed = 0;
      return n;
    }
    this.suppressed++;
    return 0;
  }

  /** Rejections not answered yet. */
  get pending(): number {
    return this.suppressed;
  }
}
