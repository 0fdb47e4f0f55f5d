/**
 * The relay: composes the media engine (UDP), the signalling server
 * (WebSocket), rooms, quality, metrics and the operator HTTP endpoint, and
 * owns the session lifecycle and graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { CALL_ROOM_PREFIX, HUB_PATH, Hub } from '../calls/hub.js';
import { HubConnection } from '../calls/hub-connection.js';
import type { RelayConfig } from '../config/index.js';
import { WzpError } from '../errors/index.js';
import {
  FEDERATION_PATH,
  FEDERATION_WORKER_ENTRY,
  Federation,
  type FederationEvent,
} from '../federation/index.js';
import type { Directory, Fleet, RelayEntry } from '../fleet/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { DatagramPathStats } from '../media/datagram-path.js';
import { DROP_REASONS, type DropReason } from '../media/engine.js';
import { POLICING_KINDS, POLICING_TIERS } from '../media/policer.js';
import { MediaWorkerPool } from '../media/pool.js';
import {
  type EngineCounter,
  MALFORMED_SLOT,
  MEDIA_BYTES_SLOT,
  type MediaEvent,
  policedSlot,
  SEND_ERROR_CODES,
  SEND_ERROR_SLOT,
  type SessionDetail,
  SLOT,
  WIRE_CODES,
} from '../media/protocol.js';
import { RoomState } from '../media/room-state.js';
import { type PacketObserver, Session } from '../media/session.js';
import type { SubscriptionChange } from '../media/subscriptions.js';
import { UDP_IO_PATHS } from '../media/udp-io.js';
import { MEDIA_WS_PATH, WS_MEDIA_MAX_MESSAGE, WsMediaPath } from '../media/ws-media.js';
import { CounterBridge, RelayMetrics } from '../metrics/index.js';
import { directiveReason, TIER_NAMES, Tier, tierName } from '../quality/index.js';
import { type Room, RoomManager, roomUpdateOf } from '../room/index.js';
import { type BodyOf, encodeSignal, type Identity, PROFILES_BY_TIER } from '../signal/index.js';
import { SignalConnection } from '../signalling/connection.js';
import type {
  EndReason,
  JoinRequest,
  RelayCore,
  Route,
  SignalPeer,
} from '../signalling/relay-core.js';
import { LogSampler } from '../util/log-sampler.js';
import { reclaimsRequested } from '../util/reclaim.js';
import {
  type AdvertisedUrls,
  advertisedUrls,
  createFleet,
  FleetMetricsSync,
} from './fleet-glue.js';
import { HttpServer } from './http-server.js';
import { loadOrCreateIdentity } from './identity-store.js';
import { connectionCapacity, type FileLimit, openFileLimit } from './nofile.js';
import { appRoutes, DEFAULT_WEB_ROOT, dashboardRoutes, WebAssets } from './web-assets.js';

export const SIGNAL_PATH = '/v2/signal';
/** Build string reported to hub clients. */
const RELAY_BUILD = 'wzp-relay/0.1.0';

export interface RelayOptions {
  config: RelayConfig;
  logger?: Logger;
  /** The relay identity; loaded from / created in `data_dir` when absent. */
  identity?: Identity;
}

export interface RelayAddresses {
  /** UDP port of media worker 0. */
  udpPort: number;
  /** UDP port of every media worker (index order; 0 while one restarts). */
  udpPorts: number[];
  signalPort: number;
  httpPort: number;
}

type RelayRoom = Room<Session, RoomState>;

/** One TCP connection on the signalling port (insertion order = age). */
interface TcpEntry {
  readonly ip: string;
  /** The signalling connection once upgraded on SIGNAL_PATH. */
  conn: SignalConnection | null;
  /** The WebSocket once upgraded on FEDERATION_PATH. */
  fed: WebSocket | null;
  /** The media path once upgraded on the WebSocket media path. */
  media: WsMediaPath | null;
  /** The direct-call hub connection once upgraded on HUB_PATH. */
  hub: HubConnection | null;
  evicted: boolean;
}

interface SessionEntry {
  session: Session;
  conn: SignalPeer;
  /** Quality tier last reported by the media plane. */
  tier: Tier;
  subject: string | null;
  fingerprint: string;
}

/** Main-thread sessions carry no media state: their observer is in the worker. */
const NO_OBSERVER: PacketObserver = {
  observe: () => false,
};

export class Relay implements RelayCore {
  readonly config: RelayConfig;
  readonly log: Logger;
  readonly metrics: RelayMetrics;
  readonly rooms: RoomManager<Session, RoomState>;
  /** The media plane: worker threads, each with its own UDP socket. */
  readonly media: MediaWorkerPool;
  readonly identity: Identity;
  /** Null when no peers and no global rooms are configured. */
  readonly federation: Federation | null;
  /** The fleet directory (in-memory when `directory_url` is unset). */
  readonly fleet: Fleet;
  private readonly fleetDirectory: Directory;
  private readonly fleetMetrics: FleetMetricsSync;
  private urls: AdvertisedUrls | null = null;
  /** The direct-call hub (`/v2/hub`). */
  readonly hub: Hub;
  private readonly hubConnections = new Set<HubConnection>();
  private readonly signalServer: Server;
  private readonly wss: WebSocketServer;
  private readonly http: HttpServer;
  /** WebSocket media (/v2/media): the UDP binding's datagrams for clients without UDP. */
  private readonly mediaWss: WebSocketServer;
  /** Open WebSocket media connections. */
  readonly mediaPaths = new Set<WsMediaPath>();
  readonly wsMediaStats = new DatagramPathStats();
  private readonly connections = new Set<SignalPeer>();
  private readonly sessions = new Map<number, SessionEntry>();
  /** Live sessions per token subject and per identity fingerprint (joins in progress included). */
  private readonly perSubject = new Map<string, number>();
  private readonly perIdentity = new Map<string, number>();
  /** TCP connections of the signalling port, oldest first, and their count per source address. */
  private readonly tcp = new Map<Socket, TcpEntry>();
  private readonly perIp = new Map<string, number>();
  private evictionsPending = 0;
  /** Concurrent signalling-port connections accepted (from max_connections and nofile). */
  readonly connectionCapacity: number;
  readonly fileLimit: FileLimit | null;
  readonly logSampler = new LogSampler(2);
  private addresses: RelayAddresses | null = null;
  private draining = false;
  private stopping: Promise<void> | null = null;

  constructor(options: RelayOptions) {
    this.config = options.config;
    this.log = options.logger ?? createLogger({ level: options.config.log_level });
    this.identity = options.identity ?? this.loadIdentity();
    this.metrics = new RelayMetrics({ defaultMetrics: true });
    this.rooms = new RoomManager<Session, RoomState>({
      maxSessions: this.config.max_sessions,
      maxParticipantsPerRoom: this.config.max_participants_per_room,
      createState: () => new RoomState(),
    });
    // A shared directory: rooms bridged on demand, and calls to people on other relays.
    const sharedDirectory =
      this.config.directory_url !== undefined && this.config.directory_url !== 'memory:';
    const federated =
      this.config.peers.length > 0 || this.config.global_rooms.length > 0 || sharedDirectory;
    const workers =
      this.config.media_workers === 0 ? availableParallelism() : this.config.media_workers;
    this.media = new MediaWorkerPool({
      count: workers,
      // Federation media runs in worker 0 (docs/federation.md, "Federation
      // media in the media workers"): its port is the one links BIND to, and
      // every room federation may carry lives there. With a shared fleet
      // directory any room may be bridged later, so every room does.
      ...(federated
        ? {
            workerEntry: FEDERATION_WORKER_ENTRY,
            extension: (index: number) =>
              index === 0 && this.federation !== null ? this.federation.workerInit() : null,
            placeRoom: (room: string) =>
              sharedDirectory || this.federation?.isGlobal(room) === true ? 0 : null,
            onExtEvent: (_worker: number, body: unknown) =>
              this.federation?.onMediaEvent(body as FederationEvent),
          }
        : {}),
      udpHost: this.config.udp_host,
      udpPort: this.config.udp_port,
      udpBufferBytes: this.config.udp_buffer_bytes,
      udpIo: this.config.udp_io,
      trunking: {
        enabled: this.config.trunking,
        maxEntries: this.config.trunk_max_entries,
        mtu: this.config.trunk_mtu,
        flushMs: this.config.trunk_flush_ms,
      },
      bind: {
        challengeTtlMs: this.config.bind_challenge_ttl_ms,
        challengeRate: this.config.bind_challenge_rate,
        unknownRate: this.config.bind_unknown_rate_per_source,
      },
      resync: {
        anchorFrames: this.config.resync_anchor_frames,
        fullMs: this.config.resync_full_ms,
      },
      keyframeLimits: {
        streamBytes: this.config.keyframe_cache_stream_bytes,
        roomBytes: this.config.keyframe_cache_room_bytes,
        relayBytes: this.config.keyframe_cache_relay_bytes,
      },
      policing: {
        mode: this.config.media_policing,
        burstMs: this.config.policing_burst_ms,
        videoHeadroom: this.config.policing_video_headroom,
        videoDefaultKbps: this.config.policing_video_default_kbps,
        audioCapKbps: this.config.policing_audio_cap_kbps,
        videoCapKbps: this.config.policing_video_cap_kbps,
        strikes: this.config.policing_strikes,
      },
      sessionTimeoutMs: this.config.session_timeout_ms,
      stallMs: this.config.media_worker_stall_ms,
      onEvent: (_worker, event) => this.onMediaEvent(event),
      onWorkerLost: (worker, ids, reason) => this.onWorkerLost(worker, ids, reason),
      onWorkerStarted: (worker, port, restart) => {
        if (restart) {
          this.log.warn({ worker, udp_port: port }, 'media worker replaced');
        }
        if (worker === 0) {
          this.onFederationWorkerStarted(port);
        }
      },
      onStall: (worker, stuck, silentMs) => {
        if (stuck) {
          this.log.error(
            { worker, silent_ms: silentMs },
            'media worker stuck: its event loop has not turned; /readyz fails',
          );
        } else {
          this.log.warn({ worker }, 'media worker recovered');
        }
      },
    });
    this.wss = new WebSocketServer({
      noServer: true,
      // Frames up to 64 KiB over the signalling limit are read and answered
      // with SIGNAL_TOO_LARGE; anything larger closes the connection (1009)
      // as soon as its header announces the length.
      maxPayload: this.config.signal_max_frame_bytes + (64 << 10),
    });
    this.mediaWss = new WebSocketServer({
      noServer: true,
      maxPayload: WS_MEDIA_MAX_MESSAGE,
      perMessageDeflate: false,
    });
    const app = this.config.web_app ? new WebAssets(DEFAULT_WEB_ROOT, appRoutes()) : null;
    const dashboard = this.config.web_app
      ? new WebAssets(DEFAULT_WEB_ROOT, dashboardRoutes())
      : null;
    const headerTimeout = this.config.http_header_timeout_ms;
    this.signalServer = createServer(
      { connectionsCheckingInterval: Math.min(1000, Math.max(100, headerTimeout / 4)) },
      (req, res) => {
        if (app?.serve(req, res) === true) {
          return;
        }
        res.writeHead(426, { 'content-type': 'text/plain' });
        res.end(`WebSocket upgrade required at ${SIGNAL_PATH}\n`);
      },
    );
    this.signalServer.headersTimeout = headerTimeout;
    this.signalServer.requestTimeout = headerTimeout;
    this.signalServer.keepAliveTimeout = Math.min(5000, headerTimeout);
    this.fileLimit = openFileLimit();
    this.connectionCapacity = connectionCapacity(this.config.max_connections, this.fileLimit);
    this.signalServer.on('connection', (socket: Socket) => this.onTcpConnection(socket));
    this.signalServer.on('clientError', (err: Error & { code?: string }, socket: Duplex) =>
      this.onClientError(err, socket),
    );
    this.signalServer.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.federation =
      this.config.peers.length > 0 ||
      this.config.global_rooms.length > 0 ||
      // A shared directory: rooms bridged on demand, and calls to people on other relays.
      (this.config.directory_url !== undefined && this.config.directory_url !== 'memory:')
        ? new Federation({
            config: this.config,
            identity: this.identity,
            log: this.log,
            rooms: this.rooms,
            post: (cmd) => this.media.postExt(0, cmd),
            remotes: {
              register: (s) => this.registerRemote(s),
              unregister: (s) => this.unregisterRemote(s),
            },
            udpPort: () => this.advertisedUdpPort,
            onRoomChanged: (name) => this.onFederatedRoomChanged(name),
            settled: () => this.media.drained(0),
            // Fleet: relays the directory vouches for, and rooms homed here.
            resolvePeer: (publicKey) => {
              const e = this.fleet.relay(publicKey.toString('hex'));
              return e === undefined ? undefined : { label: e.label, url: e.federationUrl };
            },
            // A room that lives on another worker than federation media cannot
            // be carried (only possible without a shared directory).
            acceptRoom: (room) => this.fleet.isHome(room) && this.media.workerOfRoom(room) <= 0,
            onPli: (sender, streamId) => this.onFederatedPli(sender, streamId),
            observeFrame: (seconds, cpuSeconds) => {
              this.metrics.fedFrameSeconds.observe(seconds);
              this.metrics.fedFrameCpuSeconds.observe(cpuSeconds);
            },
          })
        : null;
    const fleetParts = createFleet({
      config: this.config,
      identity: this.identity,
      log: this.log,
      metrics: this.metrics,
      hooks: {
        self: () => ({
          label: this.config.relay_label ?? this.identity.fingerprint.slice(0, 9),
          signalUrl: this.urls?.signalUrl ?? 'ws://0.0.0.0:0/v2/signal',
          mediaUrl: this.urls?.mediaUrl ?? 'udp://0.0.0.0:0',
          federationUrl: this.urls?.federationUrl ?? 'ws://0.0.0.0:0/v2/federation',
          httpUrl: this.urls?.httpUrl ?? null,
          sessions: this.sessions.size,
          maxSessions: this.config.max_sessions,
          draining: this.draining,
        }),
        participants: (room) => this.rooms.get(room)?.snapshot.length ?? 0,
        localParticipants: (room) =>
          this.rooms.get(room)?.snapshot.filter((p) => !p.remote).length ?? 0,
        fenced: (room, owner) => this.closeMovedRoom(room, owner),
        bridge: (room, home) => this.bridgeRoom(room, home),
        unbridge: (room) => this.unbridgeRoom(room),
        homed: (room) => this.homeRoom(room),
      },
    });
    this.fleet = fleetParts.fleet;
    this.fleetDirectory = fleetParts.directory;
    this.fleetMetrics = new FleetMetricsSync(this.fleet, this.metrics, this.bridge);
    this.hub = new Hub({
      config: this.config,
      log: this.log,
      metrics: this.metrics,
      publicUrl: () => this.publicSignalUrl,
      onCallEnded: (room) => this.onCallEnded(room),
    });
    if (this.federation !== null) {
      const fed = this.federation;
      this.hub.links = fed;
      fed.callSink = this.hub;
      if (this.fleetDirectory.kind === 'redis') {
        // A callee on another relay of the fleet is found in the directory.
        const fleet = this.fleet;
        this.hub.locator = {
          announce: (fp) => fleet.announcePresence(fp),
          withdraw: (fp) => fleet.withdrawPresence(fp),
          locate: async (fp) => {
            const e = await fleet.locate(fp);
            if (e === null) {
              return null;
            }
            fed.addPeer({
              label: e.label,
              url: e.federationUrl,
              publicKey: Buffer.from(e.publicKey, 'hex'),
            });
            return e.id;
          },
        };
      }
    }
    this.http = new HttpServer({
      headerTimeoutMs: headerTimeout,
      metrics: () => this.metrics.scrape(),
      ready: () => !this.draining && this.addresses !== null && this.media.healthy,
      rooms: () => this.roomsJson(),
      extra: {
        '/v2/peers': async () => this.peersJson(),
        '/v2/fleet': async () => this.fleet.json(),
        '/v2/calls': async () => this.hub.json(),
      },
      ...(dashboard === null ? {} : { static: (req, res) => dashboard.serve(req, res) }),
    });
    this.metrics.fanoutSource = () => this.media.fanout();
    this.metrics.onScrape(() => this.syncMetrics());
  }

  /**
   * The UDP port of media worker 0 as told to peers and clients. While
   * worker 0 is being replaced it is the port the replacement takes back, so
   * a link handshaken meanwhile does not learn port 0 (if the port cannot be
   * taken back, every link is closed and the peers learn the new one).
   */
  get advertisedUdpPort(): number {
    return this.config.advertised_udp_port ?? this.media.stablePortOf(0);
  }

  /** The UDP port a session's client is told to use: its media worker's. */
  udpPortOf(session: Session): number {
    const worker = Math.max(0, this.media.workerOf(session.id));
    const advertised = this.config.advertised_udp_port;
    return advertised === undefined ? this.media.portOf(worker) : advertised + worker;
  }

  /** An engine counter summed over every media worker (read from shared memory). */
  mediaCounter(name: EngineCounter): number {
    return this.media.total(SLOT[name]);
  }

  /** Packets dropped by media policing (every kind and tier), summed over every media worker. */
  mediaPoliced(): number {
    let n = 0;
    for (const kind of POLICING_KINDS) {
      for (const tier of POLICING_TIERS) {
        n += this.media.total(policedSlot(kind, tier));
      }
    }
    return n;
  }

  /** Datagrams dropped for `reason`, summed over every media worker. */
  mediaDropped(reason: DropReason): number {
    return this.media.dropped(DROP_REASONS.indexOf(reason));
  }

  /** This relay's signalling URL as clients reach it (CallSetup.relay_addr). */
  get publicSignalUrl(): string {
    return (
      this.urls?.signalUrl ??
      `ws://127.0.0.1:${this.addresses?.signalPort ?? this.config.signal_port}${SIGNAL_PATH}`
    );
  }

  /** Bound ports (after start). */
  get ports(): RelayAddresses {
    if (this.addresses === null) {
      throw new WzpError('TRANSPORT_CLOSED', 'relay not started');
    }
    return this.addresses;
  }

  /** Binds every socket; resolves with the bound ports. */
  async start(): Promise<RelayAddresses> {
    const udpPorts = await this.media.start();
    const udpPort = udpPorts[0] as number;
    const signalPort = await new Promise<number>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new WzpError(
            'TRANSPORT_BIND_FAILED',
            `cannot listen on signalling ${this.config.signal_host}:${this.config.signal_port}: ${err.message}`,
            { cause: err },
          ),
        );
      this.signalServer.once('error', onError);
      this.signalServer.listen(this.config.signal_port, this.config.signal_host, () => {
        this.signalServer.off('error', onError);
        resolve((this.signalServer.address() as AddressInfo).port);
      });
    });
    const httpPort = await this.http.listen(this.config.http_host, this.config.http_port);
    this.addresses = { udpPort, udpPorts, signalPort, httpPort };
    this.urls = advertisedUrls(this.config, this.addresses, this.advertisedUdpPort);
    await this.fleet.start();
    this.federation?.start();
    this.log.info(
      {
        udp: `${this.config.udp_host}:${udpPorts.join(',')}`,
        media_workers: udpPorts.length,
        signal: `ws://${this.config.signal_host}:${signalPort}${SIGNAL_PATH}`,
        http: `http://${this.config.http_host}:${httpPort}`,
        fingerprint: this.identity.fingerprint,
        public_key: this.identity.publicKey.toString('hex'),
        trunking: this.config.trunking,
        auth: this.config.auth_secret !== undefined,
        udp_io: this.media.ioChoice.path,
        udp_io_receive: this.media.ioChoice.receive,
        udp_io_reason: this.media.ioChoice.reason,
        nofile: this.fileLimit,
        connection_capacity: this.connectionCapacity,
      },
      'relay started',
    );
    return this.addresses;
  }

  /**
   * Graceful shutdown: readiness goes 503, joins are refused, every client
   * gets Hangup { Shutdown }, trunk batches are flushed, sockets close.
   * Bounded by `shutdown_timeout_ms`; idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.draining = true;
    this.rooms.setDraining(true);
    this.log.info({ sessions: this.sessions.size }, 'draining');
    // Release this relay's rooms so that new joins are placed elsewhere.
    const fleetStopped = this.fleet.stop();
    // Callers and callees hear it before the links go.
    this.hub.close();
    for (const conn of this.hubConnections) {
      conn.close(1001, 'relay shutting down');
    }
    // Peers drop this relay's participants as soon as the links close.
    this.federation?.stop();
    const graceful = (async () => {
      const ends: Promise<void>[] = [];
      for (const { session, conn } of [...this.sessions.values()]) {
        conn.send({ type: 'Hangup', body: { version: 1, reason: 'Shutdown' } });
        ends.push(this.endSession(session, 'shutdown'));
      }
      await Promise.all(ends);
      // Flushes every trunk batch and closes the media sockets.
      await this.media.stop();
      for (const conn of this.connections) {
        conn.close(1001, 'relay shutting down');
      }
      for (const path of this.mediaPaths) {
        path.close();
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.shutdown_timeout_ms);
      timer.unref();
    });
    await Promise.race([graceful, deadline]);
    clearTimeout(timer);
    for (const conn of this.connections) {
      conn.terminate();
    }
    for (const path of this.mediaPaths) {
      path.terminate();
    }
    for (const conn of this.hubConnections) {
      conn.terminate();
    }
    await this.media.stop();
    await Promise.all([
      new Promise<void>((resolve) => this.wss.close(() => resolve())),
      new Promise<void>((resolve) => this.mediaWss.close(() => resolve())),
      new Promise<void>((resolve) => {
        this.signalServer.close(() => resolve());
        this.signalServer.closeAllConnections();
      }),
      this.http.close(),
      fleetStopped,
    ]);
    this.log.info('relay stopped');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (
      path !== FEDERATION_PATH &&
      path !== MEDIA_WS_PATH &&
      path !== HUB_PATH &&
      path !== SIGNAL_PATH
    ) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Every WebSocket endpoint refuses new connections while draining.
    if (this.draining) {
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    if (path === FEDERATION_PATH) {
      this.onFederationUpgrade(req, socket, head);
      return;
    }
    if (path === MEDIA_WS_PATH) {
      this.onMediaUpgrade(req, socket, head);
      return;
    }
    if (path === HUB_PATH) {
      this.onHubUpgrade(req, socket, head);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = remoteOf(req);
      const conn = new SignalConnection(this, ws, remote);
      this.connections.add(conn);
      const entry = this.tcp.get(req.socket as Socket);
      if (entry !== undefined) {
        entry.conn = conn;
      }
    });
  }

  private onMediaUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.mediaWss.handleUpgrade(req, socket, head, (ws) => {
      const remote = remoteOf(req);
      const path = new WsMediaPath(ws, remote, {
        maxBufferedBytes: this.config.ws_media_max_buffered_bytes,
        bindTimeoutMs: this.config.handshake_timeout_ms,
        stats: this.wsMediaStats,
        // The datagrams go to the media worker of the session the path binds.
        onDatagram: (msg, _rinfo, p) => this.media.pathDatagram(p, msg),
        onClose: (p) => {
          this.mediaPaths.delete(p);
          this.media.pathClosed(p);
        },
      });
      this.mediaPaths.add(path);
      const entry = this.tcp.get(req.socket as Socket);
      if (entry !== undefined) {
        entry.media = path;
      }
    });
  }

  private onHubUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = remoteOf(req);
      const conn = new HubConnection(ws, {
        config: this.config,
        log: this.log,
        metrics: this.metrics,
        hub: this.hub,
        remote,
        build: RELAY_BUILD,
      });
      this.hubConnections.add(conn);
      ws.once('close', () => this.hubConnections.delete(conn));
      const entry = this.tcp.get(req.socket as Socket);
      if (entry !== undefined) {
        entry.hub = conn;
      }
    });
  }

  /** A direct call ended: its room's sessions hang up. */
  private onCallEnded(roomName: string): void {
    const room = this.rooms.get(roomName);
    if (room === undefined) {
      return;
    }
    for (const p of room.snapshot) {
      const entry = this.sessions.get(p.id);
      if (entry !== undefined) {
        entry.conn.send({ type: 'Hangup', body: { reason: 'Normal', call_id: roomName.slice(5) } });
        void this.endSession(entry.session, 'hangup').then(() =>
          entry.conn.close(1000, 'call ended'),
        );
      }
    }
  }

  // ── per-source limits ────────────────────────────────────────────────────

  /**
   * A TCP connection on the signalling port: refused over the per-address
   * limit; at capacity it evicts the oldest connection that has not
   * completed its handshake, or is refused when there is none.
   */
  private onTcpConnection(socket: Socket): void {
    const ip = socket.remoteAddress ?? '?';
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.config.max_connections_per_ip) {
      this.refuseTcp(socket, 'per_ip', ip);
      return;
    }
    if (this.tcp.size - this.evictionsPending >= this.connectionCapacity && !this.evictOne()) {
      this.refuseTcp(socket, 'capacity', ip);
      return;
    }
    const entry: TcpEntry = {
      ip,
      conn: null,
      fed: null,
      media: null,
      hub: null,
      evicted: false,
    };
    this.tcp.set(socket, entry);
    this.perIp.set(ip, n + 1);
    socket.once('close', () => {
      this.tcp.delete(socket);
      if (entry.evicted) {
        this.evictionsPending--;
      }
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) {
        this.perIp.delete(ip);
      } else {
        this.perIp.set(ip, left);
      }
    });
  }

  private refuseTcp(socket: Socket, reason: 'per_ip' | 'capacity', ip: string): void {
    this.metrics.connectionsRefused.labels(reason).inc();
    const suppressed = this.logSampler.sample(`tcp_${reason}`, performance.now());
    if (suppressed >= 0) {
      this.log.warn(
        {
          code: 'TRANSPORT_CONNECTION_LIMIT',
          reason,
          ip,
          ...(suppressed > 0 ? { suppressed } : {}),
        },
        reason === 'per_ip'
          ? `more than ${this.config.max_connections_per_ip} connections from one address`
          : `at connection capacity (${this.connectionCapacity}) and none evictable`,
      );
    }
    socket.destroy();
  }

  /** Closes the oldest connection still in its handshake; false when there is none. */
  private evictOne(): boolean {
    for (const [socket, e] of this.tcp) {
      if (e.evicted || !this.evictable(e)) {
        continue;
      }
      e.evicted = true;
      this.evictionsPending++;
      this.metrics.connectionsRefused.labels('evicted').inc();
      if (e.conn !== null) {
        e.conn.terminate();
      } else if (e.fed !== null) {
        e.fed.terminate();
      } else if (e.media !== null) {
        e.media.close(1008, 'TRANSPORT_CONNECTION_LIMIT');
      } else if (e.hub !== null) {
        e.hub.close(1008, 'TRANSPORT_CONNECTION_LIMIT');
      }
      socket.destroy();
      return true;
    }
    return false;
  }

  private evictable(e: TcpEntry): boolean {
    if (e.conn !== null) {
      return !e.conn.established;
    }
    if (e.media !== null) {
      return !e.media.isBound;
    }
    if (e.hub !== null) {
      return e.hub.fingerprint === '';
    }
    if (e.fed !== null) {
      const fed = this.federation;
      if (fed === null) {
        return true;
      }
      for (const link of fed.links.values()) {
        if (link.ws === e.fed) {
          return false;
        }
      }
    }
    return true;
  }

  /** A malformed or timed-out HTTP request on the signalling port (slowloris ends here). */
  private onClientError(err: Error & { code?: string }, socket: Duplex): void {
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const reason = timeout ? 'header_timeout' : 'bad_request';
    this.metrics.connectionsRefused.labels(reason).inc();
    const suppressed = this.logSampler.sample(`http_${reason}`, performance.now());
    if (suppressed >= 0) {
      this.log.info(
        { reason, err: err.code ?? err.message, ...(suppressed > 0 ? { suppressed } : {}) },
        'signalling port: HTTP request refused',
      );
    }
    if (socket.writable) {
      socket.end(
        timeout
          ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
          : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
    }
    socket.destroy();
  }

  private onFederationUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const entry = this.tcp.get(req.socket as Socket);
      if (entry !== undefined) {
        entry.fed = ws;
      }
      const federation = this.federation;
      if (federation === null) {
        const e = new WzpError('FEDERATION_NOT_CONFIGURED', 'this relay has no federation peers');
        this.log.warn({ remote: req.socket.remoteAddress }, e.message);
        ws.send(
          encodeSignal({ type: 'Error', body: { code: e.code, message: e.message } }),
          { binary: true },
          () => ws.close(4003, e.code),
        );
        return;
      }
      federation.accept(ws, req);
    });
  }

  /** Remote participants of a room changed: RoomUpdate to its local participants. */
  private onFederatedRoomChanged(name: string): void {
    const room = this.rooms.get(name);
    if (room !== undefined) {
      this.sendToAll(room.snapshot, {
        type: 'RoomUpdate',
        body: { version: 1, ...roomUpdateOf(room.snapshot) },
      });
    }
  }

  private peersJson(): unknown {
    if (this.federation === null) {
      return {
        self: {
          label: this.config.relay_label ?? null,
          fingerprint: this.identity.fingerprint,
          public_key: this.identity.publicKey.toString('hex'),
        },
        global_rooms: [],
        peers: [],
      };
    }
    return this.federation.peersJson();
  }

  // ── fleet ────────────────────────────────────────────────────────────────

  /** The room moved to another relay (newer epoch): hang up its local participants. */
  private closeMovedRoom(name: string, owner: RelayEntry | null): void {
    const room = this.rooms.get(name);
    this.unbridgeRoom(name);
    if (room === undefined) {
      return;
    }
    const where = owner === null ? 'another relay' : `relay ${owner.label}`;
    for (const p of room.snapshot) {
      const entry = p.remote ? undefined : this.sessions.get(p.sink.id);
      if (entry === undefined) {
        continue;
      }
      entry.conn.send({
        type: 'Hangup',
        body: {
          version: 1,
          reason: {
            PolicyViolation: {
              code: 'FLEET_ROOM_MOVED',
              reason: `room ${name} moved to ${where}; rejoin through any relay`,
            },
          },
        },
      });
      void this.endSession(entry.session, 'moved').then(() =>
        entry.conn.close(1000, 'FLEET_ROOM_MOVED'),
      );
    }
  }

  /** Serve `room` here bridged to its home (federation link on demand). */
  private bridgeRoom(room: string, home: RelayEntry): void {
    const fed = this.federation;
    if (fed === null) {
      this.log.warn({ room }, 'fleet_mode = "bridge" needs federation; serving unbridged');
      return;
    }
    const peer = fed.addPeer({
      label: home.label,
      url: home.federationUrl,
      publicKey: Buffer.from(home.publicKey, 'hex'),
    });
    fed.bridgeRoom(room, peer);
  }

  private unbridgeRoom(room: string): void {
    this.federation?.dropRoom(room);
  }

  private homeRoom(room: string): void {
    this.federation?.homeRoom(room);
  }

  // ── RelayCore ─────────────────────────────────────────────────────────────

  async route(room: string): Promise<Route> {
    const p = await this.fleet.place(room);
    return p.kind === 'redirect'
      ? { kind: 'redirect', url: p.home.signalUrl, label: p.home.label }
      : { kind: 'here' };
  }

  async join(conn: SignalPeer, request: JoinRequest): Promise<Session> {
    const now = performance.now();
    this.checkCooldown(request.fingerprint, now);
    this.reserveSession(request.subject, request.fingerprint);
    let result: Awaited<ReturnType<typeof this.rooms.join>>;
    try {
      result = await this.rooms.join(
        request.room,
        { fingerprint: request.fingerprint, alias: request.alias },
        ({ id, tag, room }) => {
          if (request.room.startsWith(CALL_ROOM_PREFIX)) {
            // Inside the room's critical section: exactly the call's two parties, once each.
            const refusal = this.hub.admit(
              request.room,
              request.fingerprint,
              room.snapshot.map((p) => p.fingerprint),
            );
            if (refusal !== null) {
              throw new WzpError(
                refusal,
                `room ${request.room} admits only the call's two parties`,
              );
            }
          }
          // The media worker has its own session (with the observer).
          const session = new Session({
            id,
            tag,
            fingerprint: request.fingerprint,
            alias: request.alias,
            room,
            bindToken: request.bindToken,
            signal: conn,
            observer: NO_OBSERVER,
            canPublish: request.canPublish,
            canSubscribe: request.canSubscribe,
            nowMs: now,
          });
          return session;
        },
      );
    } catch (err) {
      this.releaseSession(request.subject, request.fingerprint);
      throw err;
    }
    const session = result.participant.sink;
    this.sessions.set(session.id, {
      session,
      conn,
      tier: Tier.Good,
      subject: request.subject,
      fingerprint: request.fingerprint,
    });
    try {
      await this.media.join({
        id: session.id,
        tag: session.tag,
        room: request.room,
        bindToken: request.bindToken,
        canPublish: request.canPublish,
        canSubscribe: request.canSubscribe,
        policy: request.policy ?? { audioCodec: 'Opus24k', frameMs: 20, videoKbps: null },
      });
    } catch (err) {
      await this.endSession(session, 'error');
      throw err;
    }
    this.federation?.attach(session);
    // A joiner counts as Good until its reports say otherwise.
    this.applyRoomTier(result.room, result.room.state.tiers.set(session.id, Tier.Good));
    return session;
  }

  async endSession(session: Session, reason: EndReason): Promise<void> {
    const entry = this.sessions.get(session.id);
    if (entry === undefined) {
      return;
    }
    this.sessions.delete(session.id);
    this.releaseSession(entry.subject, entry.fingerprint);
    session.closed = true;
    this.media.leave(session.id);
    const room = session.room as RelayRoom;
    room.state.forget(session);
    const result = await this.rooms.leave(room, session.id);
    if (room.deleted) {
      this.media.releaseRoom(room.name);
    }
    this.metrics.sessionsEnded.labels(reason).inc();
    this.log.info({ session: session.id, room: room.name, reason }, 'session ended');
    if (result.removed) {
      this.sendToAll(result.snapshot, {
        type: 'RoomUpdate',
        body: { version: 1, ...roomUpdateOf(result.snapshot) },
      });
    }
    // The weakest participant leaving may raise the room tier (the original forgot this).
    this.applyRoomTier(room, room.state.tiers.remove(session.id));
    this.federation?.localLeft(room.name, session.id);
  }

  /**
   * Counts a session against its subject and identity limits before the
   * join (so concurrent joins cannot overshoot).
   * @throws {WzpError} SESSION_LIMIT_SUBJECT, SESSION_LIMIT_IDENTITY
   */
  private reserveSession(subject: string | null, fingerprint: string): void {
    const bySubject = subject === null ? 0 : (this.perSubject.get(subject) ?? 0);
    if (subject !== null && bySubject >= this.config.max_sessions_per_subject) {
      throw new WzpError(
        'SESSION_LIMIT_SUBJECT',
        `token subject already holds ${bySubject} sessions (max_sessions_per_subject)`,
      );
    }
    const byIdentity = this.perIdentity.get(fingerprint) ?? 0;
    if (byIdentity >= this.config.max_sessions_per_identity) {
      throw new WzpError(
        'SESSION_LIMIT_IDENTITY',
        `identity ${fingerprint} already holds ${byIdentity} sessions (max_sessions_per_identity)`,
      );
    }
    if (subject !== null) {
      this.perSubject.set(subject, bySubject + 1);
    }
    this.perIdentity.set(fingerprint, byIdentity + 1);
  }

  private releaseSession(subject: string | null, fingerprint: string): void {
    const dec = (m: Map<string, number>, k: string): void => {
      const n = (m.get(k) ?? 1) - 1;
      if (n <= 0) {
        m.delete(k);
      } else {
        m.set(k, n);
      }
    };
    if (subject !== null) {
      dec(this.perSubject, subject);
    }
    dec(this.perIdentity, fingerprint);
  }

  broadcastRoomUpdate(session: Session): void {
    const snapshot = (session.room as RelayRoom).snapshot;
    this.sendToAll(snapshot, {
      type: 'RoomUpdate',
      body: { version: 1, ...roomUpdateOf(snapshot) },
    });
  }

  routePli(from: Session, streamId: number, tag: number | null): void {
    const room = from.room as RelayRoom;
    const targets = room.state.pliTargets(room.snapshot, from, streamId, tag);
    if (targets.length === 0) {
      this.metrics.pli.labels('no_owner').inc();
      return;
    }
    for (const target of targets) {
      this.sendPli(target, streamId, 'forwarded');
    }
  }

  /**
   * Sends a PLI for `target`'s video `streamId` to it (or across federation
   * when it is a remote participant), suppressed per (sender, stream).
   */
  private sendPli(target: Session, streamId: number, result: 'forwarded' | 'relay'): void {
    const room = target.room as RelayRoom;
    if (!room.state.admitPli(target, streamId, performance.now(), this.config.pli_suppress_ms)) {
      this.metrics.pli.labels('suppressed').inc();
      return;
    }
    if (target.remote !== null) {
      if (this.federation?.sendPli(target, streamId) === true) {
        this.metrics.pli.labels('federated').inc();
      } else {
        this.metrics.pli.labels('no_owner').inc();
      }
      return;
    }
    target.signal.send({
      type: 'PictureLossIndication',
      body: { version: 1, stream_id: streamId, tag: target.tag },
    });
    this.metrics.pli.labels(result).inc();
  }

  /** A PLI that came over a federation link for a local sender (BINDING.md §8.5). */
  private onFederatedPli(target: Session, streamId: number): void {
    this.sendPli(target, streamId, 'forwarded');
  }

  subscribe(session: Session, change: SubscriptionChange): void {
    this.media.toSession({ type: 'subscription', id: session.id, change });
    if (this.federation !== null) {
      // Layer demand across links (federation/demand.ts) reads this thread's copy.
      session.av.rx.apply(change);
      this.federation.subscriptionChanged(session);
    }
  }

  transportFeedback(session: Session, fb: BodyOf<'TransportFeedback'>): void {
    this.media.toSession({
      type: 'feedback',
      id: session.id,
      rembBps: fb.remb_bps,
      acked: fb.acked_seqs.length,
      nacked: fb.nacked_seqs.length,
    });
  }

  settled(session: Session): Promise<void> {
    return this.media.settled(session.id);
  }

  resync(session: Session, tag: number): boolean {
    // The tag must name another participant of the room (BINDING §4.6).
    const known = session.room.snapshot.some(
      (p) => p.sink.tag === tag && p.sink !== session && !p.sink.closed,
    );
    if (known) {
      this.media.toSession({ type: 'resync', id: session.id, tag });
    }
    return known;
  }

  connectionClosed(conn: SignalPeer): void {
    this.connections.delete(conn);
  }

  // ── quality ──────────────────────────────────────────────────────────────

  // ── media plane events ────────────────────────────────────────────────────

  private onMediaEvent(e: MediaEvent): void {
    if (!('id' in e)) {
      return;
    }
    const remote = this.remoteSessions.get(e.id);
    if (remote !== undefined) {
      this.onRemoteMediaEvent(remote, e);
      return;
    }
    const entry = this.sessions.get(e.id);
    if (entry === undefined || entry.session.closed) {
      return;
    }
    const { session, conn } = entry;
    const room = session.room as RelayRoom;
    switch (e.type) {
      case 'bound':
        this.log.info(
          { session: session.id, from: e.from, to: e.to },
          e.from === null ? 'udp bound' : 'udp rebound',
        );
        return;
      case 'tier':
        entry.tier = e.tier as Tier;
        this.log.debug(
          { session: session.id, tier: tierName(entry.tier) },
          'participant tier changed',
        );
        this.applyRoomTier(room, room.state.tiers.set(session.id, entry.tier));
        return;
      case 'videoStream': {
        // PLI routing reads this (RoomState.pliTargets); inline it is already set.
        const w = e.streamId >>> 5;
        session.av.videoStreams[w] =
          (session.av.videoStreams[w] as number) | (1 << (e.streamId & 31));
        return;
      }
      case 'keyframeNeeded':
        this.sendPli(session, e.streamId, 'relay');
        return;
      case 'policyWarn':
        this.onPolicyWarn(session, e.tier, e.kind);
        return;
      case 'policyViolation':
        this.onPolicyViolation(session, e.code, e.reason);
        return;
      case 'timeout':
        this.log.info({ session: session.id }, 'session timed out (no datagrams)');
        conn.send({ type: 'Hangup', body: { version: 1, reason: 'Timeout' } });
        void this.endSession(session, 'timeout').then(() => conn.close(1000, 'timeout'));
        return;
      default:
        return;
    }
  }

  /** An event of a remote participant's session in worker 0 (PLI routing, keyframe requests). */
  private onRemoteMediaEvent(session: Session, e: MediaEvent): void {
    if (e.type === 'videoStream') {
      const w = e.streamId >>> 5;
      session.av.videoStreams[w] =
        (session.av.videoStreams[w] as number) | (1 << (e.streamId & 31));
    } else if (e.type === 'keyframeNeeded') {
      this.sendPli(session, e.streamId, 'relay');
    }
  }

  // ── federation media (worker 0) ──────────────────────────────────────────

  /** Sessions of remote participants (global rooms), by id: their media is in worker 0. */
  private readonly remoteSessions = new Map<number, Session>();

  private registerRemote(session: Session): void {
    this.remoteSessions.set(session.id, session);
    this.joinRemote(session);
  }

  private joinRemote(session: Session): void {
    const r = session.remote;
    if (r === null) {
      return;
    }
    this.media
      .join({
        id: session.id,
        tag: session.tag,
        room: session.room.name,
        bindToken: new Uint8Array(16),
        canPublish: true,
        canSubscribe: false,
        policy: { audioCodec: 'Opus24k', frameMs: 20, videoKbps: null },
        remote: { origin: r.origin, originTag: r.originTag },
      })
      .catch((err: unknown) => {
        // Worker 0 is down: its replacement gets every remote participant again.
        this.log.debug(
          { session: session.id, err: String(err) },
          'remote participant not in worker 0',
        );
      });
  }

  private unregisterRemote(session: Session): void {
    session.closed = true;
    this.remoteSessions.delete(session.id);
    this.media.leave(session.id);
  }

  /**
   * Worker 0 (re)started: federation media gets its state again, the
   * remote participants rejoin it, then the layer demands that name them.
   */
  private onFederationWorkerStarted(port: number): void {
    const fed = this.federation;
    if (fed === null) {
      return;
    }
    fed.workerStarted(port);
    for (const s of fed.remoteSessions()) {
      if (this.remoteSessions.has(s.id) && this.media.workerOf(s.id) < 0) {
        this.joinRemote(s);
      }
    }
    fed.pushDemands();
  }

  /** A media worker died: its sessions end with a typed Hangup; the others are untouched. */
  private onWorkerLost(worker: number, ids: number[], reason: string): void {
    this.log.error(
      { worker, sessions: ids.length, reason, code: 'MEDIA_WORKER_FAILED' },
      'media worker failed; ending its sessions and starting a replacement',
    );
    for (const id of ids) {
      const entry = this.sessions.get(id);
      if (entry === undefined) {
        continue;
      }
      const { session, conn } = entry;
      conn.send({
        type: 'Error',
        body: {
          version: 1,
          code: 'MEDIA_WORKER_FAILED',
          message: 'the media worker of this session failed',
        },
      });
      conn.send({ type: 'Hangup', body: { version: 1, reason: 'Error' } });
      void this.endSession(session, 'error').then(() => conn.close(1011, 'MEDIA_WORKER_FAILED'));
    }
  }

  /** Broadcasts a QualityDirective when the room tier changed (`next` non-null). */
  private applyRoomTier(room: RelayRoom, next: Tier | null): void {
    if (next === null || room.snapshot.length === 0) {
      return;
    }
    this.metrics.directives.inc();
    this.log.info({ room: room.name, tier: tierName(next) }, 'room tier changed');
    const recommended = PROFILES_BY_TIER[next] as (typeof PROFILES_BY_TIER)[number];
    for (const p of room.snapshot) {
      // Policing follows what the relay recommends (never lowers what was negotiated).
      this.media.toSession({
        type: 'allowAudio',
        id: p.sink.id,
        codec: recommended.codec,
        frameMs: recommended.frame_duration_ms,
      });
    }
    this.sendToAll(room.snapshot, {
      type: 'QualityDirective',
      body: {
        version: 1,
        recommended_profile: { ...(PROFILES_BY_TIER[next] as (typeof PROFILES_BY_TIER)[number]) },
        reason: directiveReason(next),
      },
    });
  }

  // ── media policing (src/media/policer.ts) ─────────────────────────────────

  /** Identity fingerprint → end of its cool-down (performance clock), after a policy hangup. */
  private readonly cooldowns = new Map<string, number>();

  private checkCooldown(fingerprint: string, now: number): void {
    const until = this.cooldowns.get(fingerprint);
    if (until === undefined) {
      return;
    }
    if (now >= until) {
      this.cooldowns.delete(fingerprint);
      return;
    }
    this.metrics.policyActions.labels('cooldown_refused').inc();
    throw new WzpError(
      'POLICY_COOLDOWN',
      `hung up for a policy violation; rejoin in ${Math.ceil((until - now) / 1000)} s`,
    );
  }

  private onPolicyWarn(session: Session, tier: string, kind: string): void {
    this.metrics.policyActions.labels('warn').inc();
    this.log.warn({ session: session.id, tier, kind }, 'media over its policed limits');
    session.signal.send({
      type: 'Error',
      body: {
        code: 'MEDIA_POLICED',
        message: `${kind} media over its policed limits (tier ${tier}): the excess is dropped`,
      },
    });
  }

  private onPolicyViolation(session: Session, code: string, reason: string): void {
    const entry = this.sessions.get(session.id);
    if (entry === undefined) {
      return;
    }
    this.metrics.policyActions.labels('hangup').inc();
    const cooldown = this.config.policing_cooldown_ms;
    if (cooldown > 0) {
      if (this.cooldowns.size >= 100_000) {
        const oldest = this.cooldowns.keys().next().value;
        if (oldest !== undefined) {
          this.cooldowns.delete(oldest);
        }
      }
      this.cooldowns.set(session.fingerprint, performance.now() + cooldown);
    }
    this.log.warn(
      { session: session.id, fingerprint: session.fingerprint, code, cooldown_ms: cooldown },
      'policy violation: hanging up',
    );
    entry.conn.send({
      type: 'Hangup',
      body: { version: 1, reason: { PolicyViolation: { code, reason } } },
    });
    void this.endSession(session, 'policy').then(() => entry.conn.close(4010, code));
  }

  private sendToAll(
    snapshot: readonly { readonly sink: Session }[],
    msg: Parameters<SignalConnection['send']>[0],
  ): void {
    // Encoded once for the whole room (a RoomUpdate of 100 participants is ~30 KB).
    let frame: Uint8Array | null = null;
    for (const p of snapshot) {
      if (p.sink.closed) {
        continue;
      }
      const conn = this.sessions.get(p.sink.id)?.conn;
      if (conn === undefined) {
        p.sink.signal.send(msg);
        continue;
      }
      frame ??= encodeSignal(msg);
      conn.sendFrame(frame);
    }
  }

  // ── operator views ───────────────────────────────────────────────────────

  private async roomsJson(): Promise<unknown> {
    const now = performance.now();
    const [listed, details] = await Promise.all([this.rooms.list(), this.media.details()]);
    return {
      rooms: listed.map(({ room, participants }) => ({
        name: room.name,
        tier: tierName(room.state.tiers.tier),
        worker: this.media.workerOfRoom(room.name),
        participants: participants.map((p) => {
          const s = p.sink;
          const entry = this.sessions.get(s.id);
          // Local sessions: the numbers of their media worker (absent when it
          // did not answer in time); federated ones: the local bookkeeping.
          const d: SessionDetail | undefined = details.get(s.id);
          return {
            tag: p.tag,
            fingerprint: p.fingerprint,
            alias: p.alias,
            relay_label: p.relayLabel,
            remote: p.remote,
            session: s.id,
            tier: entry === undefined ? null : tierName(entry.tier),
            bound: d?.bound ?? s.address !== null,
            transport: d === undefined ? null : d.transport,
            packets_in: d?.packetsIn ?? s.packetsIn,
            bytes_in: d?.bytesIn ?? s.bytesIn,
            packets_out: d?.packetsOut ?? s.packetsOut,
            bytes_out: d?.bytesOut ?? s.bytesOut,
            idle_ms: d?.idleMs ?? Math.round(now - s.lastDatagramMs),
            receiving: d?.receiving ?? [],
            subscriptions: d?.subscriptions ?? null,
            streams: d?.streams ?? [],
          };
        }),
      })),
    };
  }

  private syncMetrics(): void {
    const m = this.metrics;
    const media = this.media;
    const b = this.bridge;
    const total = (name: EngineCounter): number => media.total(SLOT[name]);
    m.activeSessions.set(this.sessions.size);
    m.signalConnections.set(this.tcp.size);
    // Per thread: relays sharing a process (tests) read the same total.
    b.set(m.frameReclaims, reclaimsRequested());
    m.activeRooms.set(this.rooms.roomCount);
    b.set(m.packetsReceived, total('mediaIn'));
    b.set(m.packetsForwarded, total('packetsForwarded'));
    b.set(m.bytesForwarded, total('bytesForwarded'));
    b.set(m.datagramsSent, total('datagramsOut'));
    m.sendQueueDatagrams.set(media.total(SLOT.sendQueueDatagrams));
    m.sendQueueBytes.set(media.total(SLOT.sendQueueBytes));
    b.set(m.trunkFrames, total('trunkFrames'));
    b.set(m.trunkEntries, total('trunkEntries'));
    b.set(m.binds, total('binds'), 'bind');
    b.set(m.binds, total('rebinds'), 'rebind');
    b.set(m.binds, total('bindChallenges'), 'challenge');
    b.set(m.binds, total('bindConfirms'), 'confirm');
    DROP_REASONS.forEach((reason, i) => {
      b.set(m.dropped, media.dropped(i), reason);
    });
    WIRE_CODES.forEach((code, i) => {
      b.set(m.malformed, media.total(MALFORMED_SLOT + i), code);
    });
    const io = media.ioPaths();
    for (const p of UDP_IO_PATHS) {
      m.udpIo.labels(p).set(io.includes(p) ? 1 : 0);
    }
    const recv = media.receivePaths();
    for (const p of UDP_IO_PATHS) {
      m.udpRecvIo.labels(p).set(recv.includes(p) ? 1 : 0);
    }
    m.udpSendSockets.set(media.sendSockets());
    b.set(m.udpRecvSyscalls, media.total(SLOT.udpRecvSyscalls));
    b.set(m.udpRecvBatches, media.total(SLOT.udpRecvBatches));
    SEND_ERROR_CODES.forEach((code, i) => {
      b.set(m.udpSendErrors, media.total(SEND_ERROR_SLOT + i), code);
    });
    b.set(m.udpSendQueued, media.total(SLOT.udpQueued));
    const perTier = new Array<number>(TIER_NAMES.length).fill(0);
    for (const { tier } of this.sessions.values()) {
      perTier[tier] = (perTier[tier] as number) + 1;
    }
    TIER_NAMES.forEach((name, i) => {
      m.qualityTier.labels(name).set(perTier[i] as number);
    });
    const ws = this.wsMediaStats;
    m.wsMediaConnections.set(ws.open);
    b.set(m.wsMediaDatagrams, ws.datagramsIn, 'in');
    b.set(m.wsMediaDatagrams, ws.datagramsOut, 'out');
    b.set(m.wsMediaDropped, ws.droppedBackpressure, 'backpressure');
    b.set(m.wsMediaDropped, ws.droppedClosed, 'closed');
    b.set(m.wsMediaDropped, ws.droppedBadFrame, 'bad_frame');
    b.set(m.wsMediaDropped, ws.bindTimeouts, 'bind_timeout');
    b.set(m.wsMediaDropped, media.total(SLOT.pathQueueDropped), 'worker_queue');
    for (const w of media.workers()) {
      const label = String(w.index);
      b.set(m.workerPackets, media.stat(w.index, SLOT.datagramsIn), label);
      b.set(m.workerCpu, media.stat(w.index, SLOT.cpuSeconds), label);
      b.set(m.workerSwitches, media.stat(w.index, SLOT.ctxSwitchesVoluntary), label, 'voluntary');
      b.set(
        m.workerSwitches,
        media.stat(w.index, SLOT.ctxSwitchesInvoluntary),
        label,
        'involuntary',
      );
      b.set(m.workerRestarts, w.restarts, label);
      m.workerLoopDelay.labels(label, 'p99').set(media.stat(w.index, SLOT.loopDelayP99));
      m.workerLoopDelay.labels(label, 'max').set(media.stat(w.index, SLOT.loopDelayMax));
      m.workerSessions.labels(label).set(w.sessions);
      m.workerUp.labels(label).set(w.ready ? 1 : 0);
      m.workerStuck.labels(label).set(w.stuck ? 1 : 0);
    }
    for (const kind of POLICING_KINDS) {
      for (const tier of POLICING_TIERS) {
        b.set(m.policed, media.total(policedSlot(kind, tier)), kind, tier);
      }
    }
    b.set(m.policyActions, media.total(SLOT.policedObserved), 'observed');
    b.set(m.keyframeHits, media.total(SLOT.keyframeHits));
    b.set(m.keyframeMisses, media.total(SLOT.keyframeMisses));
    m.keyframeBytes.set(media.total(SLOT.keyframeBytes));
    b.set(m.keyframeEvictions, media.total(SLOT.keyframeEvictions), 'bound');
    b.set(m.keyframeEvictions, media.total(SLOT.keyframeOversize), 'oversize');
    b.set(m.layerSwitches, media.total(SLOT.layerSwitchesUp), 'up');
    b.set(m.layerSwitches, media.total(SLOT.layerSwitchesDown), 'down');
    b.set(m.resyncs, total('resyncs'));
    b.set(m.fullExpansions, total('fullChain'), 'chain');
    b.set(m.fullExpansions, total('fullResync'), 'resync');
    b.set(m.fullExpansions, total('fullAnchor'), 'anchor');
    MEDIA_TYPE_LABELS.forEach((name, i) => {
      b.set(m.forwardedBytes, media.total(MEDIA_BYTES_SLOT + i), name);
    });
    this.syncFederationMetrics();
    this.fleetMetrics.sync();
  }

  private syncFederationMetrics(): void {
    const fed = this.federation;
    if (fed === null) {
      return;
    }
    const m = this.metrics;
    const fs = fed.stats;
    let signalLimited = 0;
    let signalRejected = 0;
    for (const peer of fed.directory.peers) {
      const link = fed.links.get(peer);
      m.fedPeerStatus.labels(peer.label).set(link === undefined ? 0 : 1);
      if (link?.rttMs !== null && link?.rttMs !== undefined) {
        m.fedPeerRtt.labels(peer.label).set(link.rttMs);
      }
      const c = fed.peerCounters(peer);
      this.bridge.set(m.fedPackets, c.packetsIn, peer.label, 'in');
      this.bridge.set(m.fedPackets, c.packetsOut, peer.label, 'out');
      signalLimited += c.rateLimited;
      signalRejected += c.rejected;
    }
    this.bridge.set(m.fedDeduped, fs.deduped + fs.tooOld);
    this.bridge.set(m.fedLayersFiltered, fs.layerFiltered);
    this.bridge.set(m.fedDemandRises, fed.demand.rises);
    this.bridge.set(m.fedRateLimited, fs.rateLimitedPeer, 'peer');
    this.bridge.set(m.fedRateLimited, fs.rateLimitedRoom, 'room');
    for (const [reason, n] of Object.entries(fs.dropped)) {
      this.bridge.set(m.fedDropped, n, reason);
    }
    m.fedActiveRooms.set(fed.activeRooms);
    for (const [event, n] of fed.linkEvents) {
      this.bridge.set(m.fedLinkEvents, n, event);
    }
    this.bridge.set(m.fedLinkEvents, signalLimited, 'signal_rate_limited');
    this.bridge.set(m.fedLinkEvents, signalRejected, 'signal_rejected');
  }

  private readonly bridge = new CounterBridge();

  private loadIdentity(): Identity {
    const { identity, created } = loadOrCreateIdentity(this.config.data_dir);
    if (created) {
      this.log.info(
        { dir: this.config.data_dir, fingerprint: identity.fingerprint },
        'created relay identity',
      );
    }
    return identity;
  }
}

const MEDIA_TYPE_LABELS = ['audio', 'video', 'data', 'control'] as const;

/** `address:port` of the peer of an HTTP request (for logs and ReflectResponse). */
function remoteOf(req: IncomingMessage): string {
  return `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
}
