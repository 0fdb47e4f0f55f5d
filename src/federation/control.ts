/**
 * The control channel of an installed link: signalling frames in (rate
 * limited, decoded under the frame size bound, dispatched), Ping/Pong
 * heartbeats, and liveness — one deadline timer per link that sleeps until
 * the next ping or the dead line, whichever comes first.
 */
import type WebSocket from 'ws';
import type { CallSignalSink } from '../calls/hub.js';
import type { RelayConfig } from '../config/index.js';
import { isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { type BodyOf, decodeSignal, type SignalMessage } from '../signal/index.js';
import { toBuffer } from '../util/buffers.js';
import type { GlobalRooms } from './global-rooms.js';
import type { Link } from './link.js';

/** WebSocket close code of a link that missed its heartbeats. */
export const CLOSE_DEAD = 4008;

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
  now: () => number;
}

export class LinkControl {
  constructor(private readonly o: LinkControlOptions) {}

  /** One frame on the link's WebSocket. */
  onMessage(link: Link, data: WebSocket.RawData, isBinary: boolean): void {
    if (link.closed) {
      return;
    }
    const now = this.o.now();
    link.lastHeardMs = now;
    link.signalsIn++;
    if (!link.signalBucket.take(now)) {
      link.signalsRateLimited++;
      if (link.signalsRateLimited % 100 === 1) {
        link.send({
          type: 'Error',
          body: { code: 'SIGNAL_RATE_LIMITED', message: 'federation signalling over its rate' },
        });
        this.o.log.warn({ peer: link.label }, 'federation signalling rate limited');
      }
      return;
    }
    let msg: SignalMessage;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'federation frames are binary');
      }
      msg = decodeSignal(toBuffer(data), this.o.config.signal_max_frame_bytes);
    } catch (err) {
      const e = isWzpError(err) ? err : new WzpError('SIGNAL_UNDECODABLE');
      link.send({ type: 'Error', body: { code: e.code, message: e.message.slice(0, 4000) } });
      this.o.log.warn({ peer: link.label, code: e.code }, 'bad federation message');
      return;
    }
    this.handle(link, msg);
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
      case 'Error':
        this.o.log.warn({ peer: link.label, code: msg.body.code }, msg.body.message);
        return;
      default:
        link.send({
          type: 'Error',
          body: {
            code: 'SIGNAL_UNEXPECTED',
            message: `${msg.type} is not used on federation links`,
          },
        });
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
    const dead = link.lastHeardMs + cfg.federation_dead_ms;
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
