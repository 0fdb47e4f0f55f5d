/**
 * Per-sender, per-stream receive statistics of a client (`wzp client
 * --stats`, `wzp load --video`): what arrived of each (sender tag,
 * media_type, stream_id), in compact-frame terms.
 */
import { FLAG_FRAME_END, FLAG_KEYFRAME, type MediaHeader } from '../wire/index.js';

/** Forward seq jumps up to this are loss; larger ones restart the count (a layer came back). */
const MAX_GAP = 64;

export interface StreamReceiveStats {
  media: 'audio' | 'video' | 'data' | 'control';
  stream_id: number;
  packets: number;
  /** Payload bytes (after decryption when a room key is set). */
  bytes: number;
  /** Packets with E (frame end): video frames. */
  frames: number;
  /** Packets with K and E: keyframes completed. */
  keyframes: number;
  /** Compact frames that came FULL, and MINI. */
  full: number;
  mini: number;
  /** Sequence numbers skipped by forward jumps of at most 64 (loss on the way here). */
  missing: number;
  /** Larger jumps (a simulcast layer that was not forwarded for a while, a restart). */
  restarts: number;
  last_seq: number;
}

export interface SenderReceiveStats {
  tag: number;
  streams: StreamReceiveStats[];
}

const MEDIA: StreamReceiveStats['media'][] = ['audio', 'video', 'data', 'control'];

export class ReceiveStats {
  private readonly bySender = new Map<number, Map<number, StreamReceiveStats>>();

  /** Counts one received frame of sender `tag`. */
  note(tag: number, h: MediaHeader, payloadBytes: number, full: boolean): void {
    let streams = this.bySender.get(tag);
    if (streams === undefined) {
      streams = new Map();
      this.bySender.set(tag, streams);
    }
    const key = (h.mediaType << 8) | h.streamId;
    let s = streams.get(key);
    if (s === undefined) {
      s = {
        media: MEDIA[h.mediaType & 3] as StreamReceiveStats['media'],
        stream_id: h.streamId,
        packets: 0,
        bytes: 0,
        frames: 0,
        keyframes: 0,
        full: 0,
        mini: 0,
        missing: 0,
        restarts: 0,
        last_seq: h.seq,
      };
      streams.set(key, s);
    } else {
      const step = (h.seq - s.last_seq) >>> 0;
      if (step > 1 && step <= MAX_GAP) {
        s.missing += step - 1;
      } else if (step > MAX_GAP && step < 0x80000000) {
        s.restarts++;
      }
      if (step !== 0 && step < 0x80000000) {
        s.last_seq = h.seq;
      }
    }
    s.packets++;
    s.bytes += payloadBytes;
    if (full) {
      s.full++;
    } else {
      s.mini++;
    }
    if ((h.flags & FLAG_FRAME_END) !== 0) {
      s.frames++;
      if ((h.flags & FLAG_KEYFRAME) !== 0) {
        s.keyframes++;
      }
    }
  }

  /** Every sender with its streams, sorted by tag, then media type and stream id. */
  snapshot(): SenderReceiveStats[] {
    return [...this.bySender]
      .sort((a, b) => a[0] - b[0])
      .map(([tag, streams]) => ({
        tag,
        streams: [...streams].sort((a, b) => a[0] - b[0]).map(([, s]) => ({ ...s })),
      }));
  }
}
