/**
 * Per-session quality observation on the hot path: stream statistics per
 * stream (media_type, stream_id: audio and video on the same id are two
 * streams, see stream-key.ts), the tier controller fed by QualityReports and, once per
 * second, by the loss the relay measured itself. No allocation per packet once a stream's stats exist.
 */
import {
  reportLossPercent,
  reportRttMs,
  StreamStats,
  type StreamStatsSnapshot,
  type Tier,
  TierController,
} from '../quality/index.js';
import type { MediaHeader } from '../wire/index.js';
import type { RoomState } from './room-state.js';
import type { PacketObserver, Session } from './session.js';
import { keyMediaType, keyStreamId, mediaTypeName, STREAM_KEYS, streamKey } from './stream-key.js';

/** How often relay-measured loss is evaluated. */
export const LOSS_EVAL_INTERVAL_MS = 1000;

/** One stream of a sender in `/v2/rooms`. */
export interface StreamSnapshot {
  media_type: 'audio' | 'video' | 'data' | 'control';
  stream_id: number;
  stats: StreamStatsSnapshot;
}

export class SessionObserver implements PacketObserver {
  readonly controller = new TierController();
  private readonly streams: (StreamStats | undefined)[] = new Array(STREAM_KEYS);
  private lastEval: number;
  /** The session this observer belongs to. */
  session: Session | null = null;

  constructor(
    readonly room: RoomState,
    nowMs: number,
  ) {
    this.lastEval = nowMs;
  }

  /** Links the session this observer belongs to (for stream ownership). */
  attach(session: Session): void {
    this.session = session;
  }

  get tier(): Tier {
    return this.controller.tier;
  }

  observe(
    h: MediaHeader,
    bytes: number,
    nowMs: number,
    lossByte: number,
    rttByte: number,
  ): boolean {
    const key = streamKey(h.mediaType, h.streamId);
    let stats = this.streams[key];
    if (stats === undefined) {
      stats = new StreamStats();
      this.streams[key] = stats;
    }
    stats.update(h.seq, h.timestamp, bytes, nowMs);
    let changed = false;
    if (lossByte >= 0) {
      changed = this.controller.observeReport(
        reportLossPercent(lossByte),
        reportRttMs(rttByte),
        nowMs,
      );
    }
    if (nowMs - this.lastEval >= LOSS_EVAL_INTERVAL_MS) {
      this.lastEval = nowMs;
      changed = this.controller.observeRelayLoss(this.intervalLoss(), nowMs) || changed;
    }
    return changed;
  }

  /** Loss of the worst stream since the last evaluation. */
  private intervalLoss(): number {
    let worst = 0;
    for (const s of this.streams) {
      if (s !== undefined) {
        const loss = s.takeIntervalLoss();
        if (loss > worst) {
          worst = loss;
        }
      }
    }
    return worst;
  }

  /** Stream statistics for the admin API. */
  snapshot(nowMs: number): StreamSnapshot[] {
    const out: StreamSnapshot[] = [];
    this.streams.forEach((s, key) => {
      if (s !== undefined) {
        out.push({
          media_type: mediaTypeName(keyMediaType(key)),
          stream_id: keyStreamId(key),
          stats: s.snapshot(nowMs),
        });
      }
    });
    return out;
  }
}
