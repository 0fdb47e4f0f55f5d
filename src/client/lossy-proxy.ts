/**
 * A loopback UDP proxy that injects loss on the relay → client path, for
 * measuring how receivers recover (tests, `bench/resync.mjs`, `wzp client
 * --recv-loss`). The client sends its media to the proxy (`udpPort`); the
 * proxy relays every datagram both ways from one socket per client and drops
 * a share of the TRUNK datagrams (media) it passes to the client. Control
 * datagrams (bind exchange, PONG) always pass.
 *
 * Loss is *exact and random*: of every `block` TRUNK datagrams, `round(block
 * × lossPct / 100)` chosen by a seeded PRNG are dropped, so a run loses the
 * stated share and the same seed drops the same positions.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { FrameType } from '../wire/index.js';

export interface LossyProxyOptions {
  /** The relay's UDP media port (on `relayHost`). */
  relayPort: number;
  relayHost?: string;
  /** Percentage of relay → client TRUNK datagrams dropped (0–100). */
  lossPct: number;
  /** Datagrams per loss block (default 20: 5 % drops one of every 20). */
  block?: number;
  /** PRNG seed (default 1). */
  seed?: number;
}

export class LossyUdpProxy {
  /** TRUNK datagrams passed to the client, and dropped. */
  passed = 0;
  dropped = 0;
  /** Bytes of the TRUNK datagrams the relay sent towards the client (passed or dropped). */
  bytes = 0;
  private readonly front: Socket = createSocket('udp4');
  private readonly back: Socket = createSocket('udp4');
  private client: RemoteInfo | null = null;
  private readonly relayHost: string;
  private readonly block: number;
  private readonly perBlock: number;
  private readonly drops: boolean[];
  private pos = 0;
  private rng: number;

  private constructor(options: LossyProxyOptions) {
    this.relayHost = options.relayHost ?? '127.0.0.1';
    this.block = options.block ?? 20;
    this.perBlock = Math.round((this.block * Math.min(100, Math.max(0, options.lossPct))) / 100);
    this.drops = new Array<boolean>(this.block).fill(false);
    this.rng = (options.seed ?? 1) >>> 0 || 1;
    this.front.on('message', (msg, rinfo) => {
      this.client = rinfo;
      this.back.send(msg, options.relayPort, this.relayHost);
    });
    this.back.on('message', (msg) => {
      const c = this.client;
      if (c === null) {
        return;
      }
      if (msg[0] === FrameType.Trunk) {
        this.bytes += msg.length;
        if (this.nextDrops()) {
          this.dropped++;
          return;
        }
        this.passed++;
      }
      this.front.send(msg, c.port, c.address);
    });
    this.front.on('error', () => {});
    this.back.on('error', () => {});
  }

  /** Starts a proxy on an ephemeral 127.0.0.1 port. */
  static async start(options: LossyProxyOptions): Promise<LossyUdpProxy> {
    const p = new LossyUdpProxy(options);
    await new Promise<void>((r) => p.front.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => p.back.bind(0, '127.0.0.1', () => r()));
    return p;
  }

  /** The port clients send their media to. */
  get port(): number {
    return this.front.address().port;
  }

  /** Share of TRUNK datagrams dropped so far (0–1). */
  get lossShare(): number {
    const n = this.passed + this.dropped;
    return n === 0 ? 0 : this.dropped / n;
  }

  private nextDrops(): boolean {
    if (this.pos === 0) {
      // A new block: choose its drop positions.
      this.drops.fill(false);
      for (let k = 0; k < this.perBlock; ) {
        const i = Math.floor(this.random() * this.block);
        if (!this.drops[i]) {
          this.drops[i] = true;
          k++;
        }
      }
    }
    const d = this.drops[this.pos] === true;
    this.pos = (this.pos + 1) % this.block;
    return d;
  }

  /** mulberry32. */
  private random(): number {
    this.rng = (this.rng + 0x6d2b79f5) >>> 0;
    let t = this.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  close(): Promise<void> {
    const closeOne = (s: Socket) => new Promise<void>((r) => s.close(() => r()));
    return Promise.all([closeOne(this.front), closeOne(this.back)]).then(() => undefined);
  }
}
