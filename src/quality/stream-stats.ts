/**
 * Relay-measured statistics of one sender stream (one `stream_id` of one
 * participant), updated once per packet on the hot path with plain numeric
 * state: no allocation, no exceptions.
 *
 * ## Loss (RFC 3550 A.1, widened to the u32 `seq`)
 * The highest sequence number is extended with a wrap count, so expected =
 * extended_max − base + 1 keeps counting across 0xFFFFFFFF → 0. Per packet,
 * with `delta = (seq − max) mod 2^32`:
 * - `0 < delta < MAX_DROPOUT`: in order, possibly after a gap (the gap
 *   counts as lost until filled); a smaller `seq` than `max` is a wrap;
 * - up to `MAX_MISORDER − 1` behind `max`: a late (reordered) packet. It
 *   fills its gap and reduces the loss, unless a 128-entry history of
 *   received extended numbers shows it is a duplicate, which is counted
 *   separately and never twice. A late packet older than the first one
 *   seen moves the base back (expected grows by the distance, received by
 *   one), so loss never goes negative;
 * - anything else (≥ `MAX_DROPOUT` ahead, or further behind): a stray.
 *   It is not counted, unless the very next packet follows it, which means
 *   the sender restarted its numbering (RFC 3550's `bad_seq` rule): the
 *   statistics then resynchronise on the pair instead of counting
 *   thousands of packets as lost. Counters of the finished epoch are
 *   carried into the totals, so `lost` and `expected` stay cumulative.
 * Unlike RFC 3550 there is no probation at the start: the relay only sees
 * authenticated sessions, so the first packet is trusted.
 *
 * ## Jitter (RFC 3550 §6.4.1)
 * `timestamp_ms` is the media clock (1 unit = 1 ms). For each counted
 * packet, D = (arrival − previous arrival) − (timestamp − previous
 * timestamp), the latter as a signed 32-bit difference so timestamp wrap
 * and reordering work; J += (|D| − J) / 16. Duplicates and strays are
 * skipped; a resync restarts the pairwise reference but keeps J.
 *
 * ## Rates
 * Packet and bit rates over a sliding 1 s window, approximated from two
 * fixed 1 s windows: count(now − 1 s, now] ≈ current window + previous
 * window × (share of it still inside the sliding window). The estimate
 * decays linearly to 0 within 2 s of silence. Every datagram counts,
 * duplicates and strays included (they use bandwidth too).
 *
 * ## Interval loss
 * {@link StreamStats.takeIntervalLoss} returns the loss over the packets
 * expected since its previous call (RFC 3550 A.3 "fraction lost"), for the
 * tier controller's once-per-second evaluation.
 */

/** A jump at least this far ahead is a stray until confirmed (then a resync). */
export const MAX_DROPOUT = 3000;
/** Packets up to `MAX_MISORDER − 1` behind the highest are accepted as late. */
export const MAX_MISORDER = 100;
/** Width of the sliding rate window. */
export const RATE_WINDOW_MS = 1000;

const SEQ_MOD = 0x1_0000_0000;
/** Received-history size: a power of two above MAX_MISORDER (so slot = seq & mask). */
const HISTORY_SIZE = 128;
const HISTORY_MASK = HISTORY_SIZE - 1;

/** What {@link StreamStats.update} did with a packet. */
export const PacketClass = {
  /** The stream's first packet. */
  First: 0,
  /** Ahead of the highest sequence number (maybe after a gap). */
  InOrder: 1,
  /** Late: filled a gap behind the highest sequence number. */
  Reordered: 2,
  /** Already counted: ignored for loss. */
  Duplicate: 3,
  /** Too far ahead or behind: ignored unless the next packet confirms it. */
  Stray: 4,
  /** Confirmed a stray: the statistics resynchronised on the new numbering. */
  Resync: 5,
} as const;
/** One of the {@link PacketClass} values. */
export type PacketClass = (typeof PacketClass)[keyof typeof PacketClass];

/** Statistics of one stream as shown by the admin JSON (`/v2/rooms`). */
export interface StreamStatsSnapshot {
  /** Datagrams seen (duplicates and strays included). */
  packets: number;
  /** Bytes seen (duplicates and strays included). */
  bytes: number;
  /** Packets expected from the sequence numbers. */
  expected: number;
  /** Distinct packets counted against `expected`. */
  received: number;
  /** Cumulative lost packets (expected − received, never negative). */
  lost: number;
  /** `lost / expected` in percent (0 before the first packet). */
  lossPct: number;
  /** Interarrival jitter estimate in ms. */
  jitterMs: number;
  /** Packets per second over the last second. */
  pps: number;
  /** Bits per second over the last second. */
  bps: number;
  /** Highest sequence number (u32, as on the wire). */
  highestSeq: number;
  /** Late packets that filled a gap. */
  reordered: number;
  /** Duplicates ignored. */
  duplicates: number;
  /** Resynchronisations after a confirmed jump. */
  resyncs: number;
}

/** Per-stream loss, jitter and rate statistics (see the module comment). */
export class StreamStats {
  private nPackets = 0;
  private nBytes = 0;
  private nReordered = 0;
  private nDuplicates = 0;
  private nResyncs = 0;

  // Sequence state of the current epoch (since the first packet or resync).
  private started = false;
  private maxSeq = 0;
  /** Wrap count × 2^32. */
  private cycles = 0;
  private baseExt = 0;
  private epochReceived = 0;
  /** Sequence number that would confirm the last stray (-1: none). */
  private badSeq = -1;
  /** Extended numbers of recently counted packets, slot = seq & mask. */
  private readonly history = new Float64Array(HISTORY_SIZE).fill(Number.NaN);

  // Totals of finished epochs.
  private carriedExpected = 0;
  private carriedReceived = 0;
  private carriedLost = 0;

  // Interval loss.
  private expectedPrior = 0;
  private receivedPrior = 0;

  // Jitter.
  private jitter = 0;
  private hasTransit = false;
  private lastArrivalMs = 0;
  private lastTimestamp = 0;

  // Rates.
  private windowStartMs = Number.NaN;
  private windowPackets = 0;
  private windowBytes = 0;
  private prevPackets = 0;
  private prevBytes = 0;

  /**
   * Observes one packet: `seq` and `timestampMs` as on the wire (u32),
   * `bytes` the datagram size, `arrivalMs` the relay's receive time.
   * Returns what was done with it.
   */
  update(seq: number, timestampMs: number, bytes: number, arrivalMs: number): PacketClass {
    const s = seq >>> 0;
    const size = Number.isFinite(bytes) && bytes > 0 ? bytes : 0;
    this.nPackets += 1;
    this.nBytes += size;
    this.countRate(size, arrivalMs);

    if (!this.started) {
      this.started = true;
      this.startEpoch(s, s, timestampMs, arrivalMs);
      return PacketClass.First;
    }
    const delta = (s - this.maxSeq) >>> 0;
    if (delta === 0) {
      this.nDuplicates += 1;
      this.badSeq = -1;
      return PacketClass.Duplicate;
    }
    if (delta < MAX_DROPOUT) {
      if (s < this.maxSeq) {
        this.cycles += SEQ_MOD;
      }
      this.maxSeq = s;
      this.count(s, this.cycles + s, timestampMs, arrivalMs);
      return PacketClass.InOrder;
    }
    if (delta <= SEQ_MOD - MAX_MISORDER) {
      if (s === this.badSeq) {
        // Two consecutive packets agree on the new numbering: a restart.
        this.foldEpoch();
        this.nResyncs += 1;
        this.startEpoch((s - 1) >>> 0, s, timestampMs, arrivalMs);
        return PacketClass.Resync;
      }
      this.badSeq = (s + 1) >>> 0;
      return PacketClass.Stray;
    }
    const ext = this.cycles + this.maxSeq - (SEQ_MOD - delta);
    if (this.history[s & HISTORY_MASK] === ext) {
      this.nDuplicates += 1;
      this.badSeq = -1;
      return PacketClass.Duplicate;
    }
    if (ext < this.baseExt) {
      this.baseExt = ext;
    }
    this.nReordered += 1;
    this.count(s, ext, timestampMs, arrivalMs);
    return PacketClass.Reordered;
  }

  /**
   * Loss in percent over the packets expected since the previous call
   * (late packets filling earlier gaps can make an interval look better,
   * never below 0), then starts a new interval. If fewer than `minExpected`
   * packets were expected, returns NaN and keeps accumulating, so sparse
   * streams are judged on enough packets; with the default 0 it always
   * returns a number (0 when nothing was expected).
   */
  takeIntervalLoss(minExpected = 0): number {
    const expected = this.expected;
    const received = this.received;
    const dExpected = expected - this.expectedPrior;
    if (dExpected < minExpected) {
      return Number.NaN;
    }
    const dReceived = received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = received;
    if (dExpected <= 0) {
      return 0;
    }
    const lost = dExpected - dReceived;
    return lost > 0 ? (lost / dExpected) * 100 : 0;
  }

  /** Packets expected so far, across resyncs. */
  get expected(): number {
    return this.carriedExpected + this.epochExpected();
  }

  /** Distinct packets counted so far, across resyncs. */
  get received(): number {
    return this.carriedReceived + this.epochReceived;
  }

  /** Packets lost so far (never negative). */
  get lost(): number {
    const epochLost = this.epochExpected() - this.epochReceived;
    return this.carriedLost + Math.max(epochLost, 0);
  }

  /** Cumulative loss in percent (0 before the first packet). */
  get lossPct(): number {
    const expected = this.expected;
    return expected > 0 ? (this.lost / expected) * 100 : 0;
  }

  /** Interarrival jitter estimate in ms. */
  get jitterMs(): number {
    return this.jitter;
  }

  /** Datagrams seen, duplicates and strays included. */
  get packets(): number {
    return this.nPackets;
  }

  /** Bytes seen, duplicates and strays included. */
  get bytes(): number {
    return this.nBytes;
  }

  /** Late packets that filled a gap. */
  get reordered(): number {
    return this.nReordered;
  }

  /** Duplicates ignored. */
  get duplicates(): number {
    return this.nDuplicates;
  }

  /** Resynchronisations after a confirmed sequence jump. */
  get resyncs(): number {
    return this.nResyncs;
  }

  /** Highest sequence number seen in the current epoch (u32; 0 before the first packet). */
  get highestSeq(): number {
    return this.maxSeq;
  }

  /** Packets per second over the sliding 1 s window ending at `nowMs`. */
  packetRate(nowMs: number): number {
    return this.windowed(this.windowPackets, this.prevPackets, nowMs);
  }

  /** Bits per second over the sliding 1 s window ending at `nowMs`. */
  bitRate(nowMs: number): number {
    return this.windowed(this.windowBytes, this.prevBytes, nowMs) * 8;
  }

  /** A plain object for the admin JSON (allocates; not for the per-packet path). */
  snapshot(nowMs: number): StreamStatsSnapshot {
    return {
      packets: this.nPackets,
      bytes: this.nBytes,
      expected: this.expected,
      received: this.received,
      lost: this.lost,
      lossPct: this.lossPct,
      jitterMs: this.jitter,
      pps: this.packetRate(nowMs),
      bps: this.bitRate(nowMs),
      highestSeq: this.maxSeq,
      reordered: this.nReordered,
      duplicates: this.nDuplicates,
      resyncs: this.nResyncs,
    };
  }

  private epochExpected(): number {
    return this.started ? this.cycles + this.maxSeq - this.baseExt + 1 : 0;
  }

  /** Counts a packet with extended number `ext` (not a duplicate) and updates jitter. */
  private count(seq: number, ext: number, timestampMs: number, arrivalMs: number): void {
    this.epochReceived += 1;
    this.history[seq & HISTORY_MASK] = ext;
    this.badSeq = -1;
    const ts = timestampMs >>> 0;
    if (this.hasTransit) {
      // Signed 32-bit media-clock difference: correct across wrap and reordering.
      const dTs = (ts - this.lastTimestamp) | 0;
      const d = arrivalMs - this.lastArrivalMs - dTs;
      this.jitter += ((d < 0 ? -d : d) - this.jitter) / 16;
    }
    this.hasTransit = true;
    this.lastArrivalMs = arrivalMs;
    this.lastTimestamp = ts;
  }

  /**
   * Starts an epoch whose base is `first` and highest is `seq` (the same
   * packet, or the two packets of a confirmed jump).
   */
  private startEpoch(first: number, seq: number, timestampMs: number, arrivalMs: number): void {
    this.history.fill(Number.NaN);
    this.cycles = 0;
    this.maxSeq = seq;
    // `first` is seq − 1 mod 2^32 after a jump; keep it just below seq even across 0.
    this.baseExt = first === seq ? seq : seq - 1;
    this.epochReceived = 0;
    this.hasTransit = false;
    if (first !== seq) {
      this.epochReceived = 1;
      this.history[first & HISTORY_MASK] = this.baseExt;
    }
    this.count(seq, seq, timestampMs, arrivalMs);
  }

  /** Moves the finished epoch's counts into the carried totals. */
  private foldEpoch(): void {
    const expected = this.epochExpected();
    const lost = expected - this.epochReceived;
    this.carriedExpected += expected;
    this.carriedReceived += this.epochReceived;
    this.carriedLost += Math.max(lost, 0);
  }

  private countRate(bytes: number, nowMs: number): void {
    const start = this.windowStartMs;
    if (Number.isNaN(start)) {
      this.windowStartMs = nowMs;
    } else {
      const elapsed = nowMs - start;
      if (elapsed >= 2 * RATE_WINDOW_MS) {
        this.prevPackets = 0;
        this.prevBytes = 0;
        this.windowPackets = 0;
        this.windowBytes = 0;
        this.windowStartMs = nowMs;
      } else if (elapsed >= RATE_WINDOW_MS) {
        this.prevPackets = this.windowPackets;
        this.prevBytes = this.windowBytes;
        this.windowPackets = 0;
        this.windowBytes = 0;
        this.windowStartMs = start + RATE_WINDOW_MS;
      }
    }
    this.windowPackets += 1;
    this.windowBytes += bytes;
  }

  /** Sliding-window count at `nowMs` from the current and previous fixed windows. */
  private windowed(current: number, previous: number, nowMs: number): number {
    const start = this.windowStartMs;
    if (Number.isNaN(start)) {
      return 0;
    }
    const elapsed = nowMs > start ? nowMs - start : 0;
    if (elapsed < RATE_WINDOW_MS) {
      return current + (previous * (RATE_WINDOW_MS - elapsed)) / RATE_WINDOW_MS;
    }
    if (elapsed < 2 * RATE_WINDOW_MS) {
      return (current * (2 * RATE_WINDOW_MS - elapsed)) / RATE_WINDOW_MS;
    }
    return 0;
  }
}
