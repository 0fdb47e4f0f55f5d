/**
 * Relay-measured statistics of one sender stream, updated per packet:
 * loss from sequence gaps (RFC 3550 A.1 style, extended to u32 sequence
 * numbers with wrap counting, reordering and duplicate detection),
 * interarrival jitter (RFC 3550 §6.4.1 with `timestamp_ms` as the media
 * clock), and packet/byte rates over fixed one-second windows.
 *
 * A jump of more than {@link MAX_DROPOUT} ahead (or more than
 * {@link MAX_MISORDER} behind) is not counted as loss at once: the next
 * packet must confirm the new sequence (a sender restart), and then the
 * counters resynchronise.
 */

export const MAX_DROPOUT = 3000;
export const MAX_MISORDER = 100;
const SEQ_MOD = 2 ** 32;
const RING = 128;

export interface StreamStatsSnapshot {
  packets: number;
  bytes: number;
  expected: number;
  lost: number;
  lossPct: number;
  jitterMs: number;
  pps: number;
  bps: number;
  highestSeq: number;
  reordered: number;
  duplicates: number;
}

export class StreamStats {
  packets = 0;
  bytes = 0;
  reordered = 0;
  duplicates = 0;
  /** Interarrival jitter estimate in ms. */
  jitterMs = 0;

  private initialized = false;
  private baseExt = 0;
  private maxSeq = 0;
  private cycles = 0;
  private received = 0;
  private badSeq = -1;
  private readonly ring = new Float64Array(RING).fill(Number.NaN);
  private lastArrival = 0;
  private lastTs = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private windowStart = 0;
  private windowPackets = 0;
  private windowBytes = 0;
  private pps = 0;
  private bps = 0;

  /** Observes one packet. `seq` and `timestampMs` are u32; times in ms. */
  update(seq: number, timestampMs: number, bytes: number, nowMs: number): void {
    this.packets++;
    this.bytes += bytes;
    this.rate(bytes, nowMs);
    if (!this.initialized) {
      this.resync(seq, timestampMs, nowMs);
      return;
    }
    const delta = (seq - this.maxSeq) >>> 0;
    if (delta === 0) {
      this.duplicates++;
      return;
    }
    if (delta < MAX_DROPOUT) {
      if (seq < this.maxSeq) {
        this.cycles += SEQ_MOD;
      }
      this.maxSeq = seq;
      this.accept(this.cycles + seq);
      this.jitter(timestampMs, nowMs);
      this.badSeq = -1;
      return;
    }
    if (delta <= SEQ_MOD - MAX_MISORDER) {
      // A big jump: believe it only when the next packet follows it.
      if (seq === this.badSeq) {
        this.resync(seq, timestampMs, nowMs);
      } else {
        this.badSeq = (seq + 1) >>> 0;
      }
      return;
    }
    // Behind the highest sequence: reordered or duplicate.
    const back = SEQ_MOD - delta;
    const ext = this.cycles + this.maxSeq - back;
    if (ext < this.baseExt) {
      return;
    }
    if (this.ring[ext % RING] === ext) {
      this.duplicates++;
      return;
    }
    this.reordered++;
    this.accept(ext);
  }

  /** Loss in percent over the packets expected since the previous call. */
  takeIntervalLoss(): number {
    const expected = this.expected();
    const dExpected = expected - this.expectedPrior;
    const dReceived = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    if (dExpected <= 0) {
      return 0;
    }
    return (Math.max(0, dExpected - dReceived) / dExpected) * 100;
  }

  /** Packets expected so far (highest extended seq − first + 1). */
  expected(): number {
    return this.initialized ? this.cycles + this.maxSeq - this.baseExt + 1 : 0;
  }

  /** Packets lost so far (never negative). */
  lost(): number {
    return Math.max(0, this.expected() - this.received);
  }

  snapshot(nowMs: number): StreamStatsSnapshot {
    const expected = this.expected();
    const lost = this.lost();
    const stale = nowMs - this.windowStart > 2000;
    return {
      packets: this.packets,
      bytes: this.bytes,
      expected,
      lost,
      lossPct: expected > 0 ? (lost / expected) * 100 : 0,
      jitterMs: this.jitterMs,
      pps: stale ? 0 : this.pps,
      bps: stale ? 0 : this.bps,
      highestSeq: this.maxSeq,
      reordered: this.reordered,
      duplicates: this.duplicates,
    };
  }

  private accept(ext: number): void {
    this.received++;
    this.ring[ext % RING] = ext;
  }

  private resync(seq: number, timestampMs: number, nowMs: number): void {
    this.initialized = true;
    this.cycles = 0;
    this.maxSeq = seq;
    this.baseExt = seq;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
    this.badSeq = -1;
    this.ring.fill(Number.NaN);
    this.accept(seq);
    this.lastArrival = nowMs;
    this.lastTs = timestampMs;
  }

  private jitter(timestampMs: number, nowMs: number): void {
    // Signed 32-bit media-clock difference, so wrap and small reorders work.
    const dTs = ((timestampMs - this.lastTs) << 0) | 0;
    const d = nowMs - this.lastArrival - dTs;
    this.jitterMs += (Math.abs(d) - this.jitterMs) / 16;
    this.lastArrival = nowMs;
    this.lastTs = timestampMs;
  }

  private rate(bytes: number, nowMs: number): void {
    const elapsed = nowMs - this.windowStart;
    if (elapsed >= 1000) {
      if (elapsed < 2000) {
        this.pps = (this.windowPackets * 1000) / elapsed;
        this.bps = (this.windowBytes * 8000) / elapsed;
      } else {
        this.pps = 0;
        this.bps = 0;
      }
      this.windowStart = nowMs;
      this.windowPackets = 0;
      this.windowBytes = 0;
    }
    this.windowPackets++;
    this.windowBytes += bytes;
  }
}
