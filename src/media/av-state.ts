/**
 * Per-session audio/video state of the media plane: as a sender (frame
 * counter for MINI chaining, layer availability, keyframe cache slots, and
 * one `Downstream` per receiver) and as a receiver (subscriptions and
 * feedback). Created with the session, touched by the media plane only.
 */
import type { KeyframeSlot } from './keyframe-cache.js';
import { SenderVideo } from './layer-selector.js';
import { Downstream, ReceiverPrefs } from './subscriptions.js';

export class AvState {
  /** Frames received from this session (as a sender); the current frame's number. */
  frameNo = 0;
  /** Simulcast layer state, created at the first video packet. */
  video: SenderVideo | null = null;
  /** Keyframe cache slots by stream id, created at the first keyframe. */
  keyframes: (KeyframeSlot | undefined)[] | null = null;
  /** Flows from this sender, by receiver session (change through downstream/forget). */
  readonly down = new Map<object, Downstream>();
  /** The cached keyframes were replayed to this session (at its first BIND). */
  replayed = false;
  /** Bit i set: this session sent video (non-repair) on stream id i. */
  readonly videoStreams = new Uint32Array(8);
  /** What this session asked for as a receiver. */
  readonly rx = new ReceiverPrefs();
  /** Called after a flow from this sender was dropped (forget, forgetAll): its fan-out plan goes. */
  onFlowsChange: (() => void) | null = null;

  /**
   * `down` indexed by the receiver's participant tag (small, dense, unique in
   * the room): the fan-out's lookup for every receiver of every packet is an
   * array load and one identity check instead of a hash lookup. A slot whose
   * flow belongs to an earlier holder of the tag is replaced on use.
   */
  private readonly byTag: (Downstream | undefined)[] = [];

  /** The flow to `receiver`, created on first use. */
  downstream(receiver: { readonly tag: number }): Downstream {
    const d = this.byTag[receiver.tag];
    if (d !== undefined && d.receiver === receiver) {
      return d;
    }
    return this.downstreamSlow(receiver);
  }

  private downstreamSlow(receiver: { readonly tag: number }): Downstream {
    let d = this.down.get(receiver);
    if (d === undefined) {
      d = new Downstream(receiver);
      this.down.set(receiver, d);
    }
    this.byTag[receiver.tag] = d;
    return d;
  }

  /** Drops the flow to `receiver` (it left). */
  forget(receiver: { readonly tag: number }): void {
    this.down.delete(receiver);
    this.onFlowsChange?.();
    if (this.byTag[receiver.tag]?.receiver === receiver) {
      this.byTag[receiver.tag] = undefined;
    }
  }

  /** Drops every flow from this sender (it left). */
  forgetAll(): void {
    this.down.clear();
    this.onFlowsChange?.();
    this.byTag.length = 0;
  }

  /** True if this session sent video on `streamId`. */
  sendsVideo(streamId: number): boolean {
    return ((this.videoStreams[streamId >>> 5] as number) & (1 << (streamId & 31))) !== 0;
  }

  /** The sender's video state, created on first use. */
  senderVideo(): SenderVideo {
    this.video ??= new SenderVideo();
    return this.video;
  }
}
