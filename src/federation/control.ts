/**
 * The control channel of an installed link: signalling frames in (rate
 * limited, scanned against the peer decode limits, charged to the link's
 * decode budget — over it the link is closed — decoded, dispatched; every
 * refusal is counted and answered by at most a burst of 8 `Error` replies,
 * then 1/s, each carrying the count), Ping/Pong
 * heartbeats, and liveness — one deadline timer per link that sleeps until
 * the next ping or the dead line, whichever comes first.
 */
import type WebSocket from 'ws';
import type { CallSignalSink } from '../calls/hub.js';
import type { RelayConfig } from '../config/index.js';
import { type ErrorCode, isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import {
  type BodyOf,
  decodeScannedSignal,
  frameCost,
  type SignalMessage,
  scanMsgpack,
} from '../signal/index.js';
import { rawDataBytes, toBuffer } from '../util/buffers.js';
import { type FrameObserver, FrameSpan } from '../util/frame-span.js';
import { frameHandled } from '../util/reclaim.js';
import type { GlobalRooms } from './global-rooms.js';
import type { Link } from './link.js';

/** WebSocket close code of a link that missed its heartbeats. */
export const CLOSE_DEAD = 4008;
/** WebSocket close code of a link over its decode budget (policy violation). */
export const CLOSE_OVER_BUDGET = 1008;

export interface LinkControlOptions {
  config: RelayConfig;
  log: Logger;
  rooms: GlobalRooms;
  /** Sends the link's UDP BIND again (until the peer acknowledges it). */
  sendBind: (link: Link) => void;
  closeLink: (link: Link, code: number, reason: string) => void;
  /** Where call signals from links go (the direct-call hub), if any. */
  calls: () => CallSignalSink | null;
  /** A keyframe request for a participant of some relay (pli.ts). */
  onPli: (link: Link, body: BodyOf<'FederationPli'>) => void;
  /** Which video layers of a participant the peer needs (demand.ts). */
  onLayerDemand: (link: Link, body: BodyOf<'FederationLayerDemand'>) => void;
  now: () => number;
  /** Times each received control frame (scan, decode, dispatch). */
  observeFrame?: FrameObserver;
}

export class LinkControl {
  private readonly frames: FrameSpan | null;

  constructor(private readonly o: LinkControlOptions) {
    this.frames = o.observeFrame === undefined ? null : new FrameSpan(o.observeFrame);
  }

  /** One frame on the link's WebSocket. */
  onMessage(link: Link, data: WebSocket.RawData, isBinary: boolean): void {
    if (link.closed) {
      return;
    }
    const frames = this.frames;
    if (frames === null) {
      this.receive(link, data, isBinary);
    } else {
      frames.begin();
      try {
        this.receive(link, data, isBinary);
      } finally {
        frames.end();
      }
    }
    frameHandled(rawDataBytes(data), this.o.now());
  }

  private receive(link: Link, data: WebSocket.RawData, isBinary: boolean): void {
    const now = this.o.now();
    link.lastHeardMs = now;
    link.signalsIn++;
    const frame = toBuffer(data);
    if (!link.signalBucket.take(now)) {
      link.signalsRateLimited++;
      if (this.charge(link, frame.length, 0, now)) {
        this.reject(link, 'SIGNAL_RATE_LIMITED', 'federation signalling over its rate', now, false);
      }
      return;
    }
    let elements = 0;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'federation frames are binary');
      }
      elements = scanMsgpack(frame, link.limits);
    } catch (err) {
      if (this.charge(link, frame.length, 0, now)) {
        const e = isWzpError(err) ? err : new WzpError('SIGNAL_UNDECODABLE');
        this.reject(link, e.code, e.message, now, true);
      }
      return;
    }
    if (!this.charge(link, frame.length, elements, now)) {
      return;
    }
    let msg: SignalMessage;
    try {
      msg = decodeScannedSignal(frame);
    } catch (err) {
      const e = isWzpError(err) ? err : new WzpError('SIGNAL_UNDECODABLE');
      this.reject(link, e.code, e.message, now, true);
      return;
    }
    this.handle(link, msg);
  }

  /** Charges a frame to the link's decode budget; over it the link is closed (false). */
  private charge(link: Link, bytes: number, elements: number, now: number): boolean {
    if (link.budget.take(now, frameCost(bytes, elements))) {
      return true;
    }
    link.signalsRejected++;
    const n = link.errorReplies.admit(now, true);
    link.send({
      type: 'Error',
      body: {
        code: 'SIGNAL_OVER_BUDGET',
        message: `decode budget of ${this.o.config.federation_signal_budget_bytes_per_sec} per second spent`,
        ...(n > 1 ? { count: n } : {}),
      },
    });
    this.o.log.warn({ peer: link.label }, 'federation link over its decode budget: closing');
    this.o.closeLink(link, CLOSE_OVER_BUDGET, 'SIGNAL_OVER_BUDGET');
    // Whatever is still buffered is not parsed.
    link.ws.terminate();
    return false;
  }

  /**
   * A refused control frame: counted (rate-limited frames in
   * `signalsRateLimited`, the rest in `signalsRejected`), answered within
   * the link's Error reply limit with the count of refusals it stands for,
   * logged only with the reply.
   */
  private reject(
    link: Link,
    code: ErrorCode,
    message: string,
    now: number,
    counted: boolean,
  ): void {
    if (counted) {
      link.signalsRejected++;
    }
    const n = link.errorReplies.admit(now);
    if (n === 0) {
      return;
    }
    link.send({
      type: 'Error',
      body: {
        code,
        message: (n > 1 ? `${message.slice(0, 900)} (and ${n - 1} more)` : message).slice(0, 1000),
        ...(n > 1 ? { count: n } : {}),
      },
    });
    this.o.log.warn({ peer: link.label, code, count: n }, 'federation control frame refused');
  }

  /** Dispatches one decoded control message (also the ones that arrived during the handshake). */
  handle(link: Link, msg: SignalMessage): void {
    switch (msg.type) {
      case 'Ping':
        link.send({ type: 'Pong', body: { timestamp_ms: msg.body.timestamp_ms } });
        return;
      case 'Pong':
        if (msg.body.timestamp_ms === link.pingId) {
          link.rttMs = this.o.now() - link.pingSentMs;
        }
        return;
      case 'GlobalRoomActive':
        this.o.rooms.onAnnouncement(link, msg.body.room, msg.body.participants);
        return;
      case 'GlobalRoomInactive':
        this.o.rooms.onAnnouncement(link, msg.body.room, null);
        return;
      case 'CallSignalForward': {
        const sink = this.o.calls();
        if (sink !== null) {
          sink.onForwarded(link.peerId, msg.body);
        }
        return;
      }
      case 'FederationPli':
        this.o.onPli(link, msg.body);
        return;
      case 'FederationLayerDemand':
        this.o.onLayerDemand(link, msg.body);
        return;
      case 'Error':
        this.o.log.warn({ peer: link.label, code: msg.body.code }, msg.body.message);
        return;
      default:
        this.reject(
          link,
          'SIGNAL_UNEXPECTED',
          `${msg.type} is not used on federation links`,
          this.o.now(),
          true,
        );
    }
  }

  /** Heartbeat and liveness of one link: one deadline timer, re-armed for the next deadline. */
  tick(link: Link): void {
    link.timer = null;
    if (link.closed) {
      return;
    }
    const cfg = this.o.config;
    const now = this.o.now();
    const dead = link.heardMs + cfg.federation_dead_ms;
    if (now >= dead) {
      this.o.closeLink(link, CLOSE_DEAD, 'FEDERATION_LINK_DOWN');
      return;
    }
    if (now >= link.nextPingMs) {
      link.pingId = (link.pingId + 1) % 0x7fffffff;
      link.pingSentMs = now;
      link.send({ type: 'Ping', body: { timestamp_ms: link.pingId } });
      link.nextPingMs = now + cfg.federation_heartbeat_ms;
      if (!link.udpReady) {
        this.o.sendBind(link);
      }
    }
    const next = Math.min(link.nextPingMs, dead);
    link.timer = setTimeout(() => this.tick(link), Math.max(1, next - now));
    link.timer.unref();
  }
}
