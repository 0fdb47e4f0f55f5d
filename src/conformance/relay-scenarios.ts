/**
 * Black-box conformance scenarios for a running relay, one per requirement
 * of protocol/BINDING.md. Each talks to the relay only through its public
 * signalling URL and UDP port, with the reference client.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { encode } from '@msgpack/msgpack';
import {
  AvSource,
  type ClientOptions,
  HubClient,
  type HubClientOptions,
  type IncomingCall,
  type ReceivedMedia,
  runSource,
  WzpClient,
} from '../client/index.js';
import { isWzpError } from '../errors/index.js';
import {
  decodeSignal,
  encodeSignal,
  Identity,
  type SignalMessage,
  signRegisterPresence,
} from '../signal/index.js';
import {
  BIND_MIN_SIZE,
  confirmOf,
  createHeader,
  encodeBind,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FrameType,
  type MediaHeader,
  MediaType,
  qualityFromPathStats,
} from '../wire/index.js';

export type Outcome = 'pass' | 'fail' | 'unsupported';
export type Level = 'MUST' | 'SHOULD';

export interface ScenarioContext {
  signalUrl: string;
  signal2Url?: string;
  /** A room both relays bridge (federation scenarios); default `wzp-conformance`. */
  globalRoom?: string;
  /** Access token for relays that require one. */
  token?: string;
  /** The relay's session timeout (ms); the silence scenario waits this long plus a margin. */
  sessionTimeoutMs: number;
  /** Shuts the relay down (graceful-shutdown scenario); absent → unsupported. */
  shutdown?: () => Promise<void>;
  /** Per-step wait bound (ms). */
  stepMs: number;
}

export interface Scenario {
  id: string;
  /** Section of protocol/BINDING.md. */
  section: string;
  level: Level;
  requirement: string;
  /** Runs last (destructive). */
  last?: boolean;
  run(ctx: ScenarioContext, t: ScenarioTools): Promise<void>;
}

export class Unsupported extends Error {}
export class Failed extends Error {}

/** Helpers handed to each scenario; everything opened is closed afterwards. */
export class ScenarioTools {
  private readonly opened: WzpClient[] = [];
  private readonly hubs: HubClient[] = [];
  private readonly sockets: Socket[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly room = `conf-${randomBytes(4).toString('hex')}`;

  constructor(private readonly ctx: ScenarioContext) {}

  roomName(suffix = ''): string {
    return `${this.room}${suffix}`;
  }

  async join(options: Partial<ClientOptions> = {}, room = this.room): Promise<WzpClient> {
    const c = await WzpClient.connect({
      signalUrl: this.ctx.signalUrl,
      room,
      ...(this.ctx.token !== undefined ? { token: this.ctx.token } : {}),
      ...options,
    });
    this.opened.push(c);
    return c;
  }

  track(c: WzpClient): WzpClient {
    this.opened.push(c);
    return c;
  }

  collect(c: WzpClient): ReceivedMedia[] {
    const got: ReceivedMedia[] = [];
    c.on('media', (m) => got.push(m));
    return got;
  }

  signals(c: WzpClient): SignalMessage[] {
    const got: SignalMessage[] = [];
    c.on('signal', (m) => got.push(m));
    return got;
  }

  async until(cond: () => boolean, what: string, ms = this.ctx.stepMs): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) {
        throw new Failed(`timed out after ${ms} ms waiting for ${what}`);
      }
      await sleep(5);
    }
  }

  expect(cond: boolean, message: string): void {
    if (!cond) {
      throw new Failed(message);
    }
  }

  /** A client that completed the signalling handshake only (no UDP bind). */
  async handshakeOnly(options: Partial<ClientOptions> = {}, room = this.room): Promise<WzpClient> {
    const c = new WzpClient({
      signalUrl: this.ctx.signalUrl,
      room,
      ...(this.ctx.token !== undefined ? { token: this.ctx.token } : {}),
      ...options,
    });
    this.opened.push(c);
    await c.handshake();
    return c;
  }

  /** A plain UDP socket on 127.0.0.1, closed afterwards. */
  async rawSocket(): Promise<Socket> {
    const s = createSocket('udp4');
    s.on('error', () => {});
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    this.sockets.push(s);
    return s;
  }

  /** Everything a socket receives from now on. */
  inbox(s: Socket): Buffer[] {
    const got: Buffer[] = [];
    s.on('message', (m) => got.push(m));
    return got;
  }

  /** The relay's direct-call hub URL (BINDING §9). */
  hubUrl(): string {
    return this.ctx.signalUrl.replace(/\/v2\/signal$/, '/v2/hub');
  }

  /** A registered hub client; a relay without a hub makes the scenario unsupported. */
  async hub(options: Partial<HubClientOptions> = {}): Promise<HubClient> {
    let h: HubClient;
    try {
      h = await HubClient.connect({
        url: this.hubUrl(),
        ...(this.ctx.token !== undefined ? { token: this.ctx.token } : {}),
        ...options,
      });
    } catch (err) {
      if (isWzpError(err, 'TRANSPORT_CLOSED')) {
        throw new Unsupported(`no direct-call hub at ${this.hubUrl()}`);
      }
      throw err;
    }
    this.hubs.push(h);
    return h;
  }

  /**
   * A receiver that sends no media PINGs (§4) a few times per session
   * timeout, so the relay keeps its session for long scenarios.
   */
  keepAlive(c: WzpClient): WzpClient {
    const every = Math.max(50, Math.min(5000, Math.floor(this.ctx.sessionTimeoutMs / 4)));
    const timer = setInterval(() => {
      c.ping(every).catch(() => {});
    }, every);
    this.timers.push(timer);
    return c;
  }

  async closeAll(): Promise<void> {
    for (const timer of this.timers.splice(0)) {
      clearInterval(timer);
    }
    await Promise.all(this.hubs.map((h) => h.close().catch(() => {})));
    await Promise.all(this.opened.map((c) => c.close(false).catch(() => {})));
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The relay's media address as a client of it sees it. */
function udpTarget(ctx: ScenarioContext, c: WzpClient): { host: string; port: number } {
  return { host: new URL(ctx.signalUrl).hostname, port: c.answer?.udp_port ?? 0 };
}

const audio = (seq: number): MediaHeader =>
  createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });

async function handshakeError(ctx: ScenarioContext, options: Partial<ClientOptions>, room: string) {
  const client = new WzpClient({
    signalUrl: ctx.signalUrl,
    room,
    ...(ctx.token !== undefined ? { token: ctx.token } : {}),
    ...options,
  });
  const seen: SignalMessage[] = [];
  client.on('signal', (m) => seen.push(m));
  let error: unknown = null;
  try {
    await client.handshake();
  } catch (err) {
    error = err;
  }
  await client.close(false);
  return { error, seen };
}

function videoHeader(streamId: number, seq: number, flags: number): MediaHeader {
  return createHeader({
    mediaType: MediaType.Video,
    codecId: 9,
    streamId,
    flags,
    seq,
    timestamp: seq * 33,
  });
}

/** A synthetic camera (src/client/media-source.ts) at 0.1× the reference bitrates, answering PLIs. */
function startCamera(
  client: WzpClient,
  options: { audio: boolean; layers: number[]; keyframeInterval: number },
): { source: AvSource; stop(): void; plis: number[] } {
  const source = new AvSource({ ...options, bitrateScale: 0.1 });
  const plis: number[] = [];
  client.on('signal', (m) => {
    if (m.type === 'PictureLossIndication') {
      plis.push(m.body.stream_id);
      source.requestKeyframe(m.body.stream_id);
    }
  });
  const run = runSource(source, (h, p) => client.sendMedia(h, p));
  return { source, stop: () => run.stop(), plis };
}

/** A ringing call between two fresh hub clients; `accept` answers it. */
async function ring(t: ScenarioTools) {
  const callee = await t.hub({ alias: 'callee' });
  const caller = await t.hub({ alias: 'caller' });
  const incoming = new Promise<IncomingCall>((r) => callee.once('incoming', r));
  let rang = false;
  const placed = caller.call(callee.fingerprint, { onRinging: () => (rang = true) });
  placed.setup.catch(() => {});
  const call = await Promise.race([
    incoming,
    sleep(5000).then(() => {
      throw new Failed('the callee never got the DirectCallOffer');
    }),
  ]);
  await t.until(() => rang, 'CallRinging to the caller');
  return { caller, callee, call, placed };
}

export const SCENARIOS: Scenario[] = [
  {
    id: 'join-fanout',
    section: '§4.2',
    level: 'MUST',
    requirement:
      'Every forwarded frame reaches every other participant of the room as a TRUNK entry tagged with the sender tag.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const c = await t.join();
      const got = [t.collect(a), t.collect(b), t.collect(c)];
      [a, b, c].forEach((cl, i) => {
        cl.sendMedia(audio(0), Buffer.from(`from-${i}`));
      });
      await t.until(() => got.every((g) => g.length >= 2), 'two frames at each participant');
      for (const [i, g] of got.entries()) {
        const tags = new Set(g.map((m) => m.senderTag));
        const others = [a, b, c].filter((_, j) => j !== i).map((x) => x.tag);
        t.expect(
          others.every((tag) => tags.has(tag)),
          `participant ${i} did not get both other senders`,
        );
      }
    },
  },
  {
    id: 'no-echo',
    section: '§4.2',
    level: 'MUST',
    requirement: 'The relay never sends a participant its own media.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotA = t.collect(a);
      const gotB = t.collect(b);
      for (let i = 0; i < 5; i++) {
        a.sendMedia(audio(i), Buffer.from('echo?'));
      }
      await t.until(() => gotB.length === 5, 'frames at the other participant');
      await sleep(100);
      t.expect(gotA.length === 0, `sender received ${gotA.length} of its own frames`);
    },
  },
  {
    id: 'byte-identical',
    section: '§4.2',
    level: 'MUST',
    requirement:
      'A FULL frame, and a MINI frame to a receiver holding the baseline, are forwarded byte-identical (but for the anchored FULL of §4.6).',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotB = t.collect(b);
      const sent: Buffer[] = [];
      // Nine frames: the tenth would be an anchor (§4.6, resync_anchor_frames = 10).
      for (let i = 0; i < 9; i++) {
        sent.push(
          a.sendMedia(audio(i), randomBytes(40), i === 5 ? qualityFromPathStats(0, 20, 1) : null),
        );
        await sleep(2);
      }
      await t.until(() => gotB.length === 9, 'nine frames');
      gotB.forEach((m, i) => {
        t.expect(m.frame.equals(sent[i] as Buffer), `frame ${i} differs from what was sent`);
      });
    },
  },
  {
    id: 'mini-late-joiner',
    section: '§4.2',
    level: 'MUST',
    requirement:
      'A receiver without the sender baseline gets MINI frames expanded to FULL, then MINI, and decodes every header exactly.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotB = t.collect(b);
      for (let i = 0; i < 5; i++) {
        a.sendMedia(audio(i), Buffer.from(`p${i}`));
      }
      await t.until(() => gotB.length === 5, 'early frames');
      const c = await t.join();
      const gotC = t.collect(c);
      for (let i = 5; i < 10; i++) {
        a.sendMedia(audio(i), Buffer.from(`p${i}`));
        await sleep(2);
      }
      await t.until(() => gotC.length === 5, 'late joiner frames');
      t.expect(gotC[0]?.frameType === 'full', 'first frame to the late joiner is not FULL');
      gotC.forEach((m, i) => {
        t.expect(
          m.header.seq === 5 + i && m.header.timestamp === (5 + i) * 20,
          `frame ${i}: wrong seq/timestamp`,
        );
        t.expect(m.payload.toString() === `p${5 + i}`, `frame ${i}: wrong payload`);
      });
    },
  },
  {
    id: 'version-mismatch',
    section: '§3.2',
    level: 'MUST',
    requirement:
      'A CallOffer with protocol_version ≠ 2 gets Hangup { ProtocolVersionMismatch { server_supported: [2] } }.',
    async run(ctx, t) {
      const { error, seen } = await handshakeError(ctx, { protocolVersion: 1 }, t.roomName());
      t.expect(
        isWzpError(error, 'PROTOCOL_VERSION_MISMATCH'),
        `handshake ended with ${String(error)}`,
      );
      const h = seen.find((m) => m.type === 'Hangup');
      t.expect(
        JSON.stringify(h?.body.reason) === '{"ProtocolVersionMismatch":{"server_supported":[2]}}',
        'no typed Hangup',
      );
    },
  },
  {
    id: 'version-missing',
    section: '§3.2',
    level: 'MUST',
    requirement:
      'A CallOffer without protocol_version is treated as an old client and gets the same typed Hangup.',
    async run(ctx, t) {
      const { error } = await handshakeError(ctx, { protocolVersion: null }, t.roomName());
      t.expect(
        isWzpError(error, 'PROTOCOL_VERSION_MISMATCH'),
        `handshake ended with ${String(error)}`,
      );
    },
  },
  {
    id: 'bad-signature',
    section: '§3.2',
    level: 'MUST',
    requirement:
      'A CallOffer whose signature does not verify gets Error { code: "BAD_SIGNATURE" } and the connection closes.',
    async run(ctx, t) {
      const identity = Identity.generate();
      const liar = Identity.generate();
      identity.sign = (data: Uint8Array) => liar.sign(data);
      const { error } = await handshakeError(ctx, { identity }, t.roomName());
      t.expect(isWzpError(error, 'BAD_SIGNATURE'), `handshake ended with ${String(error)}`);
    },
  },
  {
    id: 'signal-oversize',
    section: '§2.1',
    level: 'MUST',
    requirement:
      'A signalling frame over 1 MiB is answered with Error { code: "SIGNAL_TOO_LARGE" }; the connection stays up after the handshake.',
    async run(_ctx, t) {
      const a = await t.join();
      const errors: string[] = [];
      a.on('relayError', (e) => errors.push(e.code));
      a.sendSignalFrame(Buffer.alloc((1 << 20) + 16, 0x90));
      await t.until(() => errors.length > 0, 'an Error message');
      t.expect(errors[0] === 'SIGNAL_TOO_LARGE', `got ${errors[0]}`);
      await pingPong(t, a);
    },
  },
  {
    id: 'signal-undecodable',
    section: '§2.1',
    level: 'MUST',
    requirement:
      'Undecodable frames and unknown variants get typed Errors (SIGNAL_UNDECODABLE, SIGNAL_UNKNOWN_VARIANT); the connection stays up.',
    async run(_ctx, t) {
      const a = await t.join();
      const errors: string[] = [];
      a.on('relayError', (e) => errors.push(e.code));
      a.sendSignalFrame(Buffer.from([0xc1]));
      a.sendSignalFrame(encode({ NoSuchVariant: { version: 1 } }));
      await t.until(() => errors.length >= 2, 'two Error messages');
      t.expect(
        errors[0] === 'SIGNAL_UNDECODABLE' && errors[1] === 'SIGNAL_UNKNOWN_VARIANT',
        `got ${errors.join(',')}`,
      );
      await pingPong(t, a);
    },
  },
  {
    id: 'malformed-datagrams-isolated',
    section: '§4',
    level: 'MUST',
    requirement:
      'Malformed datagrams are dropped without affecting the sender session or other participants.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotB = t.collect(b);
      const garbage = [
        Buffer.from([0x00, 0x02]),
        Buffer.from([0x01, 9]),
        Buffer.from([0xff, 1, 2]),
        randomBytes(64),
      ];
      for (let i = 0; i < 50; i++) {
        a.sendDatagram(garbage[i % garbage.length] as Buffer);
      }
      a.sendMedia(audio(1), Buffer.from('still-alive'));
      await t.until(
        () => gotB.some((m) => m.payload.toString() === 'still-alive'),
        'the valid frame after garbage',
      );
    },
  },
  {
    id: 'unbound-dropped',
    section: '§4',
    level: 'MUST',
    requirement: 'Media from an address no session is bound to is not forwarded.',
    async run(ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotB = t.collect(b);
      const port = a.answer?.udp_port ?? 0;
      const host = new URL(ctx.signalUrl).hostname;
      const s = createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      const frame = Buffer.concat([
        Buffer.from([0x00]),
        Buffer.from('02000000000000000000000100000014000068656c6c6f', 'hex'),
      ]);
      s.send(frame, port, host);
      s.send(encodeBind(randomBytes(16)), port, host);
      await sleep(200);
      await new Promise<void>((r) => s.close(() => r()));
      t.expect(gotB.length === 0, 'unbound media was forwarded');
    },
  },
  {
    id: 'nat-rebinding',
    section: '§4',
    level: 'MUST',
    requirement:
      'A BIND with the same token from a new address moves the session; media flows both ways from the new address.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const gotA = t.collect(a);
      const gotB = t.collect(b);
      await a.rebind();
      a.sendMedia(audio(0), Buffer.from('moved'));
      b.sendMedia(audio(0), Buffer.from('to-moved'));
      await t.until(
        () => gotB.length === 1 && gotA.length === 1,
        'media both ways after rebinding',
      );
    },
  },
  {
    id: 'bind-return-path',
    section: '§4.5',
    level: 'MUST',
    requirement:
      'A BIND alone binds nothing: the relay answers a BIND_CHALLENGE no larger than the BIND, and media reaches the address only after a BIND_CONFIRM from it, acknowledged by BIND_ACK.',
    async run(ctx, t) {
      const b = await t.join();
      const c = await t.handshakeOnly();
      const token = c.answer?.bind_token as Buffer;
      const s = await t.rawSocket();
      const inbox = t.inbox(s);
      const to = udpTarget(ctx, c);
      s.send(encodeBind(token, BIND_MIN_SIZE), to.port, to.host);
      await t.until(() => inbox.some((d) => d[0] === FrameType.BindChallenge), 'BIND_CHALLENGE');
      const ch = inbox.find((d) => d[0] === FrameType.BindChallenge) as Buffer;
      t.expect(ch.length <= BIND_MIN_SIZE, `challenge of ${ch.length} B answers a 33 B BIND`);
      t.expect(ch.subarray(1, 17).equals(token), 'challenge does not carry the token');
      t.expect(!inbox.some((d) => d[0] === FrameType.BindAck), 'BIND_ACK before any confirm');
      b.sendMedia(audio(0), Buffer.from('before-confirm'));
      await sleep(200);
      t.expect(!inbox.some((d) => d[0] === FrameType.Trunk), 'media before the confirm');
      s.send(confirmOf(ch), to.port, to.host);
      await t.until(() => inbox.some((d) => d[0] === FrameType.BindAck), 'BIND_ACK after confirm');
      b.sendMedia(audio(1), Buffer.from('after-confirm'));
      await t.until(() => inbox.some((d) => d[0] === FrameType.Trunk), 'media after the confirm');
    },
  },
  {
    id: 'bind-short-dropped',
    section: '§4.5',
    level: 'MUST',
    requirement:
      'A BIND shorter than 33 bytes is dropped without any reply, even with a valid token.',
    async run(ctx, t) {
      const c = await t.handshakeOnly();
      const token = c.answer?.bind_token as Buffer;
      const s = await t.rawSocket();
      const inbox = t.inbox(s);
      const to = udpTarget(ctx, c);
      for (const n of [17, 32]) {
        const short = Buffer.alloc(n);
        short[0] = FrameType.Bind;
        token.copy(short, 1);
        s.send(short, to.port, to.host);
      }
      await sleep(300);
      t.expect(inbox.length === 0, `${inbox.length} replies to short BINDs`);
    },
  },
  {
    id: 'bind-takeover-refused',
    section: '§4.5',
    level: 'MUST',
    requirement:
      'A BIND carrying another session token, sent from an address bound to a session, moves nothing: that address keeps its own media and receives none of the other room.',
    async run(_ctx, t) {
      const victim = await t.join({}, t.roomName('-v'));
      const mate = await t.join({}, t.roomName('-v'));
      const attacker = await t.join({}, t.roomName('-x'));
      const talker = await t.join({}, t.roomName('-x'));
      const gotVictim = t.collect(victim);
      const gotAttacker = t.collect(attacker);
      // The attacker's BIND from the victim's own socket (what a spoofed source looks like).
      for (let i = 0; i < 3; i++) {
        victim.sendDatagram(encodeBind(attacker.answer?.bind_token as Buffer));
      }
      await sleep(100);
      for (let i = 0; i < 5; i++) {
        talker.sendMedia(audio(i), Buffer.from(`x-${i}`));
        mate.sendMedia(audio(i), Buffer.from(`v-${i}`));
      }
      await t.until(() => gotVictim.length >= 5, 'the victim keeps its room media');
      await t.until(() => gotAttacker.length >= 5, 'the attacker keeps its own media');
      await sleep(100);
      t.expect(
        gotVictim.every((m) => m.senderTag === mate.tag),
        'the victim got media of another room',
      );
    },
  },
  {
    id: 'bind-confirm-elsewhere-refused',
    section: '§4.5',
    level: 'MUST',
    requirement:
      'A challenge confirmed from an address other than the one it was sent to binds nothing and gets no BIND_ACK.',
    async run(ctx, t) {
      const b = await t.join();
      const c = await t.handshakeOnly();
      const token = c.answer?.bind_token as Buffer;
      const s1 = await t.rawSocket();
      const s2 = await t.rawSocket();
      const in1 = t.inbox(s1);
      const in2 = t.inbox(s2);
      const to = udpTarget(ctx, c);
      s1.send(encodeBind(token), to.port, to.host);
      await t.until(() => in1.some((d) => d[0] === FrameType.BindChallenge), 'BIND_CHALLENGE');
      s2.send(confirmOf(in1[0] as Buffer), to.port, to.host);
      await sleep(200);
      b.sendMedia(audio(0), Buffer.from('nobody'));
      await sleep(200);
      t.expect(in2.length === 0, `${in2.length} datagrams reached the confirming stranger`);
      t.expect(
        !in1.some((d) => d[0] !== FrameType.BindChallenge),
        'the challenged address got more',
      );
    },
  },
  {
    id: 'quality-directive',
    section: '§5',
    level: 'MUST',
    requirement:
      'Three degraded reports make the room tier drop (QualityDirective to all); the weakest leaving raises it again.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const reasons: string[] = [];
      a.on('qualityDirective', (d) => reasons.push(d.reason ?? ''));
      for (let i = 0; i < 3; i++) {
        b.sendMedia(audio(i), Buffer.from('q'), qualityFromPathStats(8, 40, 5));
        await sleep(5);
      }
      await t.until(() => reasons.length >= 1, 'a downgrade directive');
      t.expect(reasons[0] === 'weakest link: Degraded', `got "${reasons[0]}"`);
      await b.close();
      await t.until(() => reasons.length >= 2, 'an upgrade directive after the weakest left');
      t.expect(reasons[1] === 'weakest link: Good', `got "${reasons[1]}"`);
    },
  },
  {
    id: 'leave-updates-room',
    section: '§7',
    level: 'MUST',
    requirement: 'A closed WebSocket ends the session and the rest of the room gets a RoomUpdate.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      await t.until(() => a.lastRoomUpdate?.count === 2, 'RoomUpdate with two');
      await b.close(false);
      await t.until(() => a.lastRoomUpdate?.count === 1, 'RoomUpdate with one');
    },
  },
  {
    id: 'silence-timeout',
    section: '§4',
    level: 'MUST',
    requirement:
      'A session without any datagram for the session timeout ends and the room is updated.',
    async run(ctx, t) {
      if (ctx.sessionTimeoutMs > 60_000) {
        throw new Unsupported(`session timeout ${ctx.sessionTimeoutMs} ms is too long to wait for`);
      }
      const a = await t.join();
      await t.join();
      await t.until(() => a.lastRoomUpdate?.count === 2, 'RoomUpdate with two');
      const keepAlive = setInterval(
        () => void a.ping().catch(() => {}),
        Math.max(50, ctx.sessionTimeoutMs / 4),
      );
      try {
        await t.until(
          () => a.lastRoomUpdate?.count === 1,
          'the silent participant to time out',
          ctx.sessionTimeoutMs * 2 + 2000,
        );
      } finally {
        clearInterval(keepAlive);
      }
    },
  },
  {
    id: 'pli-suppression',
    section: '§6.1',
    level: 'MUST',
    requirement:
      'A PictureLossIndication without tag goes to the sender of video on that stream_id, at most once per 200 ms per (sender, stream).',
    async run(_ctx, t) {
      const owner = await t.join();
      const viewer = await t.join();
      const gotV = t.collect(viewer);
      const plis = t.signals(owner);
      owner.sendMedia(
        createHeader({
          mediaType: MediaType.Video,
          codecId: 9,
          streamId: 1,
          flags: FLAG_KEYFRAME | FLAG_FRAME_END,
          seq: 1,
          timestamp: 33,
        }),
        Buffer.from('v'),
      );
      await t.until(() => gotV.length === 1, 'the video frame');
      for (let i = 0; i < 3; i++) {
        viewer.sendSignal({ type: 'PictureLossIndication', body: { version: 1, stream_id: 1 } });
      }
      await sleep(120);
      const n = plis.filter((m) => m.type === 'PictureLossIndication').length;
      t.expect(n === 1, `owner got ${n} PLIs within 120 ms, expected 1`);
      await sleep(150);
      viewer.sendSignal({ type: 'PictureLossIndication', body: { version: 1, stream_id: 1 } });
      await t.until(
        () => plis.filter((m) => m.type === 'PictureLossIndication').length === 2,
        'a PLI after the window',
      );
    },
  },
  // ── video (§5, §6) and resync (§4.6) ────────────────────────────────
  {
    id: 'av-stream-identity',
    section: '§5',
    level: 'MUST',
    requirement:
      'Audio and video on stream_id 0 are separate streams: both delivered (≥ 98 %), no false loss, no downgrade QualityDirective.',
    async run(_ctx, t) {
      const a = await t.join();
      const b = t.keepAlive(await t.join());
      const got = t.collect(b);
      const directives = [a, b].map((c) => t.signals(c));
      // Longer than three 1 s loss evaluations: false loss would downgrade within this time.
      const cam = startCamera(a, { audio: true, layers: [0], keyframeInterval: 30 });
      await sleep(3600);
      cam.stop();
      await sleep(200);
      const audioN = got.filter((m) => m.header.mediaType === MediaType.Audio).length;
      const videoN = got.filter(
        (m) => m.header.mediaType === MediaType.Video && m.header.streamId === 0,
      ).length;
      t.expect(audioN >= cam.source.sent.audio * 0.98, `audio ${audioN}/${cam.source.sent.audio}`);
      const sentV = cam.source.sent.video[0] as number;
      t.expect(videoN >= sentV * 0.98, `video ${videoN}/${sentV}`);
      for (const d of directives) {
        const q = d.filter((m) => m.type === 'QualityDirective');
        t.expect(q.length === 0, `a QualityDirective was sent: ${JSON.stringify(q[0]?.body)}`);
      }
    },
  },
  {
    id: 'pli-targeted',
    section: '§6.1',
    level: 'MUST',
    requirement:
      'A PictureLossIndication with tag goes to that sender only (carrying its own tag), even when other cameras send on the same stream_id.',
    async run(_ctx, t) {
      const cam1 = await t.join();
      const cam2 = await t.join();
      const viewer = t.keepAlive(await t.join());
      const got = t.collect(viewer);
      const plis1 = t.signals(cam1);
      const plis2 = t.signals(cam2);
      for (const [i, c] of [cam1, cam2].entries()) {
        c.sendMedia(videoHeader(0, 1, FLAG_KEYFRAME | FLAG_FRAME_END), Buffer.from(`cam${i}`));
      }
      await t.until(() => got.length === 2, 'a frame of each camera');
      viewer.requestKeyframe(cam1.tag, 0);
      const isPli = (m: SignalMessage) => m.type === 'PictureLossIndication';
      await t.until(() => plis1.some(isPli), 'the PLI at the first camera');
      await sleep(300);
      t.expect(!plis2.some(isPli), 'the other camera of the stream got the PLI too');
      const pli = plis1.find(isPli);
      t.expect(
        pli?.type === 'PictureLossIndication' &&
          pli.body.tag === cam1.tag &&
          pli.body.stream_id === 0,
        `PLI body ${JSON.stringify(pli?.body)}`,
      );
    },
  },
  {
    id: 'keyframe-cache-joiner',
    section: '§6.2',
    level: 'MUST',
    requirement:
      "A joiner gets the sender's cached keyframe right after its first BIND, as FULL frames, before any other frame of that sender.",
    async run(_ctx, t) {
      const cam = await t.join();
      const early = t.keepAlive(await t.join());
      const gotEarly = t.collect(early);
      // One keyframe at the start, then only delta frames: a joiner can decode only from the cache.
      const c = startCamera(cam, { audio: false, layers: [0], keyframeInterval: 100_000 });
      try {
        await t.until(() => gotEarly.length > 10, 'video at the early receiver');
        const keySeqs = gotEarly
          .filter((m) => (m.header.flags & FLAG_KEYFRAME) !== 0)
          .map((m) => m.header.seq);
        t.expect(keySeqs.length > 0, 'the early receiver saw no keyframe');
        const late = t.keepAlive(await t.join());
        const got = t.collect(late);
        await t.until(() => got.length > keySeqs.length + 3, 'video at the joiner');
        const head = got.slice(0, keySeqs.length);
        t.expect(
          head.every((m) => (m.header.flags & FLAG_KEYFRAME) !== 0 && m.frameType === 'full'),
          `the joiner's first ${keySeqs.length} frames are not the keyframe as FULL frames`,
        );
        t.expect(
          head.map((m) => m.header.seq).join() === keySeqs.join(),
          `replayed seqs ${head.map((m) => m.header.seq).join()} ≠ keyframe ${keySeqs.join()}`,
        );
        t.expect(
          got.slice(keySeqs.length).every((m) => (m.header.flags & FLAG_KEYFRAME) === 0),
          'keyframe packets after the delta frames',
        );
      } finally {
        c.stop();
      }
    },
  },
  {
    id: 'simulcast-one-layer',
    section: '§6.3',
    level: 'MUST',
    requirement:
      'An uncapped receiver gets at most one video layer of a sender at a time (the highest available).',
    async run(_ctx, t) {
      const cam = await t.join();
      const rx = t.keepAlive(await t.join());
      const got = t.collect(rx);
      const c = startCamera(cam, { audio: false, layers: [0, 1, 2], keyframeInterval: 15 });
      await sleep(2000);
      c.stop();
      await sleep(100);
      const runs: number[] = [];
      for (const m of got) {
        if (m.header.mediaType === MediaType.Video && runs[runs.length - 1] !== m.header.streamId) {
          runs.push(m.header.streamId);
        }
      }
      t.expect(runs.length > 0, 'no video');
      t.expect(new Set(runs).size === runs.length, `layers interleaved: runs ${runs.join(',')}`);
      t.expect(runs[runs.length - 1] === 2, `settled on layer ${runs[runs.length - 1]}, not 2`);
    },
  },
  {
    id: 'simulcast-max-layer',
    section: '§6.3',
    level: 'MUST',
    requirement: 'SubscriptionUpdate { tag: nil, max_layer: 0 } caps every sender at layer 0.',
    async run(_ctx, t) {
      const cam = await t.join();
      const rx = t.keepAlive(await t.join());
      rx.subscribe(null, { maxLayer: 0 });
      await sleep(100);
      const got = t.collect(rx);
      const c = startCamera(cam, { audio: false, layers: [0, 1, 2], keyframeInterval: 15 });
      await sleep(1500);
      c.stop();
      await sleep(100);
      const layers = new Set(
        got.filter((m) => m.header.mediaType === MediaType.Video).map((m) => m.header.streamId),
      );
      t.expect(layers.size === 1 && layers.has(0), `layers received: ${[...layers].join(',')}`);
    },
  },
  {
    id: 'simulcast-switch-up-keyframe',
    section: '§6.3',
    level: 'MUST',
    requirement:
      'Raising the cap switches the layer up at a keyframe of the new layer (the relay asks for one with a PLI), and the first frame after the switch is FULL.',
    async run(_ctx, t) {
      const cam = await t.join();
      const rx = t.keepAlive(await t.join());
      rx.subscribe(cam.tag, { maxLayer: 0 });
      await sleep(100);
      const got = t.collect(rx);
      // Rare keyframes: the switch must come from the relay's PLI, answered by the camera.
      const c = startCamera(cam, { audio: false, layers: [0, 2], keyframeInterval: 100_000 });
      try {
        await sleep(600);
        rx.subscribe(cam.tag, { maxLayer: 2 });
        await t.until(
          () => got.some((m) => m.header.mediaType === MediaType.Video && m.header.streamId === 2),
          'layer 2 after raising the cap',
          3000,
        );
        const first = got.find(
          (m) => m.header.mediaType === MediaType.Video && m.header.streamId === 2,
        );
        t.expect(
          ((first?.header.flags ?? 0) & FLAG_KEYFRAME) !== 0,
          'layer 2 began on a delta frame',
        );
        t.expect(first?.frameType === 'full', 'the first frame after the switch was not FULL');
        t.expect(
          c.plis.some((p) => p === 2),
          'the relay sent no PLI for layer 2',
        );
      } finally {
        c.stop();
      }
    },
  },
  {
    id: 'subscription-video-off',
    section: '§6.3',
    level: 'MUST',
    requirement:
      "SubscriptionUpdate { tag, video: false } stops that sender's video and keeps its audio.",
    async run(_ctx, t) {
      const cam = await t.join();
      const rx = t.keepAlive(await t.join());
      const got = t.collect(rx);
      const c = startCamera(cam, { audio: true, layers: [0], keyframeInterval: 15 });
      try {
        await t.until(() => got.some((m) => m.header.mediaType === MediaType.Video), 'video');
        rx.subscribe(cam.tag, { video: false });
        await sleep(200);
        const from = got.length;
        await sleep(600);
        const after = got.slice(from);
        t.expect(
          !after.some((m) => m.header.mediaType === MediaType.Video),
          'video still arrives after video: false',
        );
        t.expect(
          after.filter((m) => m.header.mediaType === MediaType.Audio).length >= 20,
          'audio stopped too',
        );
      } finally {
        c.stop();
      }
    },
  },
  {
    id: 'feedback-lowers-layer',
    section: '§6.4',
    level: 'MUST',
    requirement:
      'TransportFeedback with remb_bps below the current layer rate lowers the layer at once; the way back up waits for the 3000 ms hold.',
    async run(_ctx, t) {
      const cam = await t.join();
      const rx = t.keepAlive(await t.join());
      const got = t.collect(rx);
      // Layer rates at 0.1× the reference: about 15, 60 and 250 kbit/s (plus keyframes).
      const c = startCamera(cam, { audio: false, layers: [0, 1, 2], keyframeInterval: 15 });
      const lastLayer = () =>
        got.filter((m) => m.header.mediaType === MediaType.Video).at(-1)?.header.streamId ?? -1;
      try {
        await t.until(() => lastLayer() === 2, 'layer 2 without feedback', 4000);
        await sleep(700); // the relay measures layer rates over 500 ms windows
        // 120 kbit/s fits layer 1 (about 60) but not layer 2 (about 250).
        rx.sendFeedback(120_000);
        await t.until(() => lastLayer() < 2, 'a lower layer after remb_bps 120 kbit/s', 2000);
        const low = Date.now();
        let upAt = -1;
        while (Date.now() - low < 9000 && upAt < 0) {
          rx.sendFeedback(50_000_000);
          await sleep(250);
          if (lastLayer() === 2) {
            upAt = Date.now() - low;
          }
        }
        t.expect(upAt >= 0, 'never went back up to layer 2 with ample remb_bps');
        t.expect(upAt >= 2500, `went back up after ${upAt} ms, before the 3000 ms hold`);
      } finally {
        c.stop();
      }
    },
  },
  {
    id: 'resync-request',
    section: '§4.6',
    level: 'MUST',
    requirement:
      "After ResyncRequest { tag }, that sender's frames go FULL to the requester (not to others) for the resync window; an unknown tag gets Error SIGNAL_UNKNOWN_TAG.",
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const c = await t.join();
      const gotB = t.collect(b);
      const gotC = t.collect(c);
      const errors = t.signals(b);
      let seq = 0;
      const send = async (n: number): Promise<void> => {
        const want = gotB.length + n;
        for (let i = 0; i < n; i++) {
          a.sendMedia(audio(seq), Buffer.from(`p${seq}`));
          seq++;
          await sleep(2);
        }
        await t.until(() => gotB.length >= want && gotC.length >= want, 'frames');
      };
      await send(3); // relay frames 1–3: FULL then MINI
      b.requestResync(a.tag);
      await sleep(100);
      await send(5); // frames 4–8 (the anchor is frame 10)
      const kinds = (g: ReceivedMedia[]) =>
        g
          .slice(3)
          .map((m) => m.frameType[0])
          .join('');
      t.expect(kinds(gotB) === 'fffff', `requester got ${kinds(gotB)} after ResyncRequest`);
      t.expect(kinds(gotC) === 'mmmmm', `other receiver got ${kinds(gotC)}`);
      t.expect(
        gotB
          .slice(3)
          .every((m, i) => m.header.seq === 3 + i && m.payload.toString() === `p${3 + i}`),
        'the FULL frames do not carry the MINI frames’ headers and payloads',
      );
      b.requestResync(0xfffe);
      await t.until(
        () => errors.some((m) => m.type === 'Error' && m.body.code === 'SIGNAL_UNKNOWN_TAG'),
        'Error SIGNAL_UNKNOWN_TAG for an unknown tag',
      );
    },
  },
  {
    id: 'resync-anchor',
    section: '§4.6',
    level: 'MUST',
    requirement:
      "Every 10th frame of a sender (resync_anchor_frames) goes FULL to every receiver, with the MINI frame's header and payload.",
    async run(_ctx, t) {
      const a = await t.join();
      const b = await t.join();
      const c = await t.join();
      const got = [t.collect(b), t.collect(c)];
      for (let i = 0; i < 20; i++) {
        a.sendMedia(audio(i), Buffer.from(`p${i}`));
        await sleep(2);
      }
      await t.until(() => got.every((g) => g.length >= 20), 'twenty frames');
      for (const g of got) {
        const kinds = g.map((m) => m.frameType[0]).join('');
        t.expect(kinds === `f${'m'.repeat(8)}f${'m'.repeat(9)}f`, `frame kinds ${kinds}`);
        t.expect(
          g.every((m, i) => m.header.seq === i && m.payload.toString() === `p${i}`),
          'wrong header or payload',
        );
      }
    },
  },
  {
    id: 'signal-ping',
    section: '§6.5',
    level: 'SHOULD',
    requirement:
      'Ping is answered with Pong carrying the same timestamp_ms; UDP PING with PONG and the same u64.',
    async run(_ctx, t) {
      const a = await t.join();
      await pingPong(t, a);
      const rtt = await a.ping();
      t.expect(rtt >= 0, 'no UDP PONG');
    },
  },
  {
    id: 'graceful-shutdown',
    section: '§7',
    level: 'MUST',
    requirement: 'On shutdown every client gets Hangup { reason: "Shutdown" }.',
    last: true,
    async run(ctx, t) {
      if (ctx.shutdown === undefined) {
        throw new Unsupported('no way to shut the relay down was given (--shutdown-command)');
      }
      const a = await t.join();
      const reasons: unknown[] = [];
      a.on('hangup', (h) => reasons.push(h.reason));
      await ctx.shutdown();
      await t.until(() => reasons.length > 0, 'a Hangup');
      t.expect(reasons[0] === 'Shutdown', `got ${JSON.stringify(reasons[0])}`);
    },
  },
  {
    id: 'federation-presence',
    section: '§8.3',
    level: 'MUST',
    requirement:
      'A participant of a global room on the second relay appears in RoomUpdate on the first with its relay label, and disappears when it leaves.',
    async run(ctx, t) {
      const { a, b, base } = await joinBothRelays(ctx, t);
      const remote = a.lastRoomUpdate?.participants.find(
        (p) => p.fingerprint === b.identity.fingerprint,
      );
      t.expect(remote !== undefined, 'relay 1 does not list the participant of relay 2');
      t.expect(
        remote?.relay_label !== null && remote?.relay_label !== undefined,
        'the remote participant has no relay_label',
      );
      await b.close(true);
      await t.until(() => a.lastRoomUpdate?.count === base, 'the remote participant to leave');
    },
  },
  {
    id: 'federation-bridge',
    section: '§8.4',
    level: 'MUST',
    requirement:
      'Participants of a global room on two linked relays receive each other exactly once, unchanged, under one distinct sender tag each.',
    async run(ctx, t) {
      const { a, b } = await joinBothRelays(ctx, t);
      const gotA = t.collect(a);
      const gotB = t.collect(b);
      const n = 20;
      const sentA: Buffer[] = [];
      const sentB: Buffer[] = [];
      for (let i = 1; i <= n; i++) {
        sentA.push(a.sendMedia(audio(i), Buffer.from(`fed-a-${i}`)));
        sentB.push(b.sendMedia(audio(i), Buffer.from(`fed-b-${i}`)));
      }
      const mine = (g: ReceivedMedia[], prefix: string) =>
        g.filter((m) => m.payload.toString().startsWith(prefix));
      await t.until(
        () => mine(gotA, 'fed-b-').length >= n && mine(gotB, 'fed-a-').length >= n,
        `${n} frames each way`,
      );
      await sleep(200);
      for (const [got, prefix, own] of [
        [gotA, 'fed-b-', 'fed-a-'],
        [gotB, 'fed-a-', 'fed-b-'],
      ] as const) {
        const frames = mine(got, prefix);
        t.expect(frames.length === n, `${frames.length} frames instead of ${n} (duplicates?)`);
        t.expect(
          new Set(frames.map((m) => m.payload.toString())).size === n,
          'a frame arrived twice',
        );
        t.expect(new Set(frames.map((m) => m.senderTag)).size === 1, 'more than one sender tag');
        t.expect(mine(got, own).length === 0, 'a participant got its own media back');
      }
      // FULL frames cross the link byte for byte (the first frame of each sender is FULL).
      const firstAtB = mine(gotB, 'fed-a-').find((m) => m.header.seq === 1);
      t.expect(
        firstAtB?.frame.equals(sentA[0] as Buffer) === true,
        'the first FULL frame was changed on its way across the link',
      );
    },
  },
  {
    id: 'hub-register',
    section: '§9.2',
    level: 'MUST',
    requirement:
      'A RegisterPresence signed by identity_pub over "register-presence" ‖ identity_pub is answered with RegisterPresenceAck { success: true, fingerprint }.',
    async run(_ctx, t) {
      const identity = Identity.generate();
      const h = await t.hub({ identity });
      t.expect(h.fingerprint === identity.fingerprint, 'fingerprint');
    },
  },
  {
    id: 'hub-forged-register',
    section: '§9.2',
    level: 'MUST',
    requirement:
      'A RegisterPresence whose signature does not verify gets RegisterPresenceAck { success: false } and Error { code: "HUB_BAD_REGISTRATION" }, and the connection closes.',
    async run(ctx, t) {
      const { default: WebSocket } = await import('ws');
      const ws = new WebSocket(t.hubUrl());
      const got: SignalMessage[] = [];
      ws.on('message', (d) => {
        try {
          got.push(decodeSignal(d as Buffer));
        } catch {
          // counted as nothing
        }
      });
      const opened = await new Promise<boolean>((r) => {
        ws.once('open', () => r(true));
        ws.once('error', () => r(false));
      });
      if (!opened) {
        throw new Unsupported(`no direct-call hub at ${t.hubUrl()}`);
      }
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      if (ctx.token !== undefined) {
        ws.send(encodeSignal({ type: 'AuthToken', body: { token: ctx.token } }));
      }
      const id = Identity.generate();
      ws.send(
        encodeSignal({
          type: 'RegisterPresence',
          body: {
            identity_pub: id.publicKey,
            signature: signRegisterPresence(Identity.generate()),
            alias: null,
          },
        }),
      );
      await Promise.race([closed, sleep(5000)]);
      ws.terminate();
      const ack = got.find((m) => m.type === 'RegisterPresenceAck');
      t.expect(ack?.type === 'RegisterPresenceAck' && !ack.body.success, 'no failed ack');
      const err = got.find((m) => m.type === 'Error');
      t.expect(
        err?.type === 'Error' && err.body.code === 'HUB_BAD_REGISTRATION',
        `got ${JSON.stringify(err?.body)}`,
      );
    },
  },
  {
    id: 'hub-call-setup',
    section: '§9.3',
    level: 'MUST',
    requirement:
      'A DirectCallOffer reaches the registered callee and the caller gets CallRinging; an accepting DirectCallAnswer gives both parties a CallSetup naming room "call-<call_id>", and both can join it.',
    async run(_ctx, t) {
      const { caller, callee, call, placed } = await ring(t);
      const [a, b] = await Promise.all([placed.setup, call.accept()]);
      t.expect(
        a.room === `call-${placed.callId}` && b.room === a.room,
        `rooms ${a.room} ${b.room}`,
      );
      t.expect(a.roomKey.equals(b.roomKey), 'the parties derived different call keys');
      const ca = t.track(
        await WzpClient.connect({ signalUrl: a.relayUrl, room: a.room, identity: caller.identity }),
      );
      const cb = t.track(
        await WzpClient.connect({ signalUrl: b.relayUrl, room: b.room, identity: callee.identity }),
      );
      await t.until(
        () => ca.lastRoomUpdate?.count === 2 && cb.lastRoomUpdate?.count === 2,
        '2 in the call room',
      );
    },
  },
  {
    id: 'hub-call-room-parties',
    section: '§9.4',
    level: 'MUST',
    requirement:
      'A call room admits only the call\'s two parties, once each: anyone else gets Error { code: "CALL_NOT_PARTY" }.',
    async run(_ctx, t) {
      const { call, placed } = await ring(t);
      const [a] = await Promise.all([placed.setup, call.accept()]);
      let error: unknown = null;
      try {
        t.track(await WzpClient.connect({ signalUrl: a.relayUrl, room: a.room }));
      } catch (err) {
        error = err;
      }
      t.expect(isWzpError(error, 'CALL_NOT_PARTY'), `a stranger joined: ${String(error)}`);
    },
  },
  {
    id: 'hub-reject',
    section: '§9.3',
    level: 'MUST',
    requirement: 'A rejecting DirectCallAnswer ends the call: the caller gets Hangup { Declined }.',
    async run(_ctx, t) {
      const { call, placed } = await ring(t);
      call.reject();
      let reason: unknown = null;
      try {
        await placed.setup;
      } catch (err) {
        reason = (err as { reason?: unknown }).reason;
      }
      t.expect(reason === 'Declined', `caller saw ${JSON.stringify(reason)}`);
    },
  },
  {
    id: 'hub-disconnect',
    section: '§9.3',
    level: 'MUST',
    requirement:
      "When a party's hub connection closes, the other party of each of its calls gets a Hangup.",
    async run(_ctx, t) {
      const { caller, callee, call, placed } = await ring(t);
      await Promise.all([placed.setup, call.accept()]);
      const hung = new Promise<void>((r) => caller.once('hangup', () => r()));
      await callee.close();
      await Promise.race([
        hung,
        sleep(5000).then(() => {
          throw new Failed('no Hangup after the callee disconnected');
        }),
      ]);
    },
  },
];

/** The global room and second relay of the federation scenarios. */
function federated(ctx: ScenarioContext): { room: string; url2: string } {
  if (ctx.signal2Url === undefined) {
    throw new Unsupported('needs a second, federated relay (--signal2)');
  }
  return { room: ctx.globalRoom ?? 'wzp-conformance', url2: ctx.signal2Url };
}

/**
 * Joins `a` to the global room on the first relay and `b` on the second, and
 * waits until each relay lists both; `base` is the room's count before `b`.
 */
async function joinBothRelays(
  ctx: ScenarioContext,
  t: ScenarioTools,
): Promise<{ a: WzpClient; b: WzpClient; base: number }> {
  const { room, url2 } = federated(ctx);
  const a = await t.join({}, room);
  const base = await settledCount(t, a);
  const b = await t.join({ signalUrl: url2 }, room);
  await t.until(() => a.lastRoomUpdate?.count === base + 1, 'the remote participant at relay 1');
  await t.until(() => b.lastRoomUpdate?.count === base + 1, 'the remote participant at relay 2');
  return { a, b, base };
}

/** The participant count once RoomUpdates stop changing (others may be in a global room). */
async function settledCount(t: ScenarioTools, c: WzpClient): Promise<number> {
  await t.until(() => c.lastRoomUpdate !== null, 'a first RoomUpdate');
  await sleep(200);
  return c.lastRoomUpdate?.count ?? 1;
}

async function pingPong(t: ScenarioTools, c: WzpClient): Promise<void> {
  const pongs: number[] = [];
  c.on('signal', (m) => {
    if (m.type === 'Pong') {
      pongs.push(m.body.timestamp_ms);
    }
  });
  c.sendSignal({ type: 'Ping', body: { version: 1, timestamp_ms: 4242 } });
  await t.until(() => pongs.includes(4242), 'Pong 4242');
}

export interface ScenarioResult {
  id: string;
  section: string;
  level: Level;
  requirement: string;
  outcome: Outcome;
  reason: string;
  durationMs: number;
  expectedFailure: boolean;
}

/** Runs the scenarios (destructive ones last), each with its own room and clean-up. */
export async function runScenarios(
  ctx: ScenarioContext,
  options: { only?: string[]; expectedFailures?: Set<string> } = {},
): Promise<ScenarioResult[]> {
  const chosen = SCENARIOS.filter(
    (s) => options.only === undefined || options.only.includes(s.id),
  ).sort((a, b) => Number(a.last ?? false) - Number(b.last ?? false));
  const results: ScenarioResult[] = [];
  for (const s of chosen) {
    const t = new ScenarioTools(ctx);
    const start = performance.now();
    let outcome: Outcome = 'pass';
    let reason = 'ok';
    try {
      await s.run(ctx, t);
    } catch (err) {
      if (err instanceof Unsupported) {
        outcome = 'unsupported';
      } else {
        outcome = 'fail';
      }
      reason = err instanceof Error ? err.message : String(err);
    } finally {
      await t.closeAll();
    }
    results.push({
      id: s.id,
      section: s.section,
      level: s.level,
      requirement: s.requirement,
      outcome,
      reason,
      durationMs: Math.round(performance.now() - start),
      expectedFailure: options.expectedFailures?.has(s.id) ?? false,
    });
  }
  return results;
}
