/**
 * Duplicate detection for federation media: one sliding window of
 * sequence numbers per (origin relay, sender, media type, stream id), as in an SRTP replay
 * list. `accept(seq)` is true the first time a sequence number is seen
 * and false for a repeat or for one older than the window. u32 sequence
 * numbers wrap; distances are taken modulo 2^32. No allocation per call.
 */

/** Sequence numbers remembered behind the highest one seen. */
export const REPLAY_WINDOW = 1024;
/**
 * Consecutive too-old packets after which the window restarts at the new
 * sequence: a sender that restarted its counter loses at most this many
 * packets instead of being silenced until it passes its old high mark.
 */
export const REPLAY_RESYNC_AFTER = 32;
const WORDS = REPLAY_WINDOW / 32;

export type ReplayVerdict = 'new' | 'duplicate' | 'too_old';

export class ReplayWindow {
  private highest = -1;
  private tooOld = 0;
  /** Bit i of the window = highest - i was seen. */
  private readonly bits = new Uint32Array(WORDS);

  /** Records `seq` and tells whether it is new. */
  check(seq: number): ReplayVerdict {
    if (this.highest < 0) {
      this.highest = seq >>> 0;
      this.bits.fill(0);
      this.bits[0] = 1;
      return 'new';
    }
    // Signed distance in (-2^31, 2^31].
    const ahead = ((seq - this.highest) | 0) as number;
    if (ahead > 0) {
      this.tooOld = 0;
      this.shift(ahead);
      this.highest = seq >>> 0;
      this.bits[0] = (this.bits[0] as number) | 1;
      return 'new';
    }
    const back = -ahead;
    if (back >= REPLAY_WINDOW) {
      if (++this.tooOld >= REPLAY_RESYNC_AFTER) {
        this.tooOld = 0;
        this.highest = -1;
      }
      return 'too_old';
    }
    this.tooOld = 0;
    const word = back >>> 5;
    const mask = 1 << (back & 31);
    const w = this.bits[word] as number;
    if ((w & mask) !== 0) {
      return 'duplicate';
    }
    this.bits[word] = w | mask;
    return 'new';
  }

  /** Moves the window forward by `n` positions (bit i moves to i + n). */
  private shift(n: number): void {
    const bits = this.bits;
    if (n >= REPLAY_WINDOW) {
      bits.fill(0);
      return;
    }
    const words = n >>> 5;
    const rem = n & 31;
    for (let i = WORDS - 1; i >= 0; i--) {
      const src = i - words;
      let v = 0;
      if (src >= 0) {
        v = ((bits[src] as number) << rem) >>> 0;
        if (rem !== 0 && src - 1 >= 0) {
          v = (v | ((bits[src - 1] as number) >>> (32 - rem))) >>> 0;
        }
      }
      bits[i] = v;
    }
  }
}

/**
 * Replay windows of one remote sender, one per stream (created on first
 * use). A stream is (media_type, stream_id): audio and video both use
 * stream id 0 and number their packets independently, so one window for
 * both would drop most of one of them as duplicates or too old.
 */
export class StreamReplay {
  private readonly windows: (ReplayWindow | undefined)[] = new Array(1024);

  check(mediaType: number, streamId: number, seq: number): ReplayVerdict {
    const key = ((mediaType & 3) << 8) | (streamId & 0xff);
    let w = this.windows[key];
    if (w === undefined) {
      w = new ReplayWindow();
      this.windows[key] = w;
    }
    return w.check(seq);
  }
}
