/**
 * Prometheus metrics of the relay, one registry per relay instance (so many
 * relays can live in one process, e.g. in tests).
 *
 * Per-packet counts are NOT incremented through prom-client on the hot
 * path: the media engine keeps plain integer counters and `sync()` hooks
 * copy their deltas into these metrics at scrape time.
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client';

export interface MetricDoc {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  labels: string[];
  help: string;
}

export const METRIC_DOCS: readonly MetricDoc[] = [
  {
    name: 'wzp_relay_active_sessions',
    type: 'gauge',
    labels: [],
    help: 'Sessions joined to a room.',
  },
  {
    name: 'wzp_relay_active_rooms',
    type: 'gauge',
    labels: [],
    help: 'Rooms with at least one participant.',
  },
  {
    name: 'wzp_relay_packets_received_total',
    type: 'counter',
    labels: [],
    help: 'Media frames received from bound sessions and decoded.',
  },
  {
    name: 'wzp_relay_packets_forwarded_total',
    type: 'counter',
    labels: [],
    help: 'Media frames forwarded (one per receiver).',
  },
  {
    name: 'wzp_relay_bytes_forwarded_total',
    type: 'counter',
    labels: [],
    help: 'Bytes of forwarded compact frames (trunk overhead excluded).',
  },
  {
    name: 'wzp_relay_datagrams_sent_total',
    type: 'counter',
    labels: [],
    help: 'UDP datagrams sent by the relay.',
  },
  {
    name: 'wzp_relay_udp_send_queue_datagrams',
    type: 'gauge',
    labels: [],
    help: 'Datagrams waiting in the media socket send queue (the kernel refused them for now; non-zero means the relay is sending faster than the host can).',
  },
  {
    name: 'wzp_relay_udp_send_queue_bytes',
    type: 'gauge',
    labels: [],
    help: 'Bytes waiting in the media socket send queue.',
  },
  {
    name: 'wzp_relay_udp_io',
    type: 'gauge',
    labels: ['path'],
    help: 'Send path of the media socket: 1 for the one in use (native = sendmmsg add-on, dgram = node:dgram), 0 for the other.',
  },
  {
    name: 'wzp_relay_udp_send_errors_total',
    type: 'counter',
    labels: ['code'],
    help: 'Datagrams (one per destination) the media socket could not send, by errno code (EINVAL, EACCES, ENETUNREACH, ...) or oversize (larger than a UDP payload, not sent).',
  },
  {
    name: 'wzp_relay_udp_send_queued_total',
    type: 'counter',
    labels: [],
    help: 'Native path: datagrams the kernel refused for now (EAGAIN) and that were handed to the send queue.',
  },
  {
    name: 'wzp_relay_udp_recv_io',
    type: 'gauge',
    labels: ['path'],
    help: 'Receive path of the media socket: 1 for the one in use (native = recvmmsg add-on, dgram = node:dgram), 0 for the other.',
  },
  {
    name: 'wzp_relay_udp_send_sockets',
    type: 'gauge',
    labels: [],
    help: 'Media workers whose native path sends through a send-only socket bound to their port (which no poller watches; see docs/benchmarks.md, "Native UDP I/O").',
  },
  {
    name: 'wzp_relay_udp_recv_syscalls_total',
    type: 'counter',
    labels: [],
    help: 'Native receive path: recvmmsg calls on the media socket (one per wakeup; a call that finds nothing is counted too).',
  },
  {
    name: 'wzp_relay_udp_recv_batches_total',
    type: 'counter',
    labels: [],
    help: 'Native receive path: batches of datagrams handed to the relay (one JS call each; datagrams received ÷ batches = batch size).',
  },
  {
    name: 'wzp_relay_datagrams_dropped_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Datagrams dropped, by reason (unbound, malformed, no_baseline, unknown_frame_type, not_permitted, bind_unknown_token, bind_too_short, bind_rate_limited, bind_bad_challenge, bind_expired, bad_control, draining).',
  },
  {
    name: 'wzp_relay_malformed_datagrams_total',
    type: 'counter',
    labels: ['code'],
    help: 'Malformed media datagrams by wire error code.',
  },
  {
    name: 'wzp_relay_fanout_recipients',
    type: 'histogram',
    labels: [],
    help: 'Receivers per forwarded media frame.',
  },
  {
    name: 'wzp_relay_trunk_frames_sent_total',
    type: 'counter',
    labels: [],
    help: 'TRUNK datagrams sent.',
  },
  {
    name: 'wzp_relay_trunk_entries_sent_total',
    type: 'counter',
    labels: [],
    help: 'Entries in sent TRUNK datagrams.',
  },
  {
    name: 'wzp_relay_binds_total',
    type: 'counter',
    labels: ['kind'],
    help: 'Binding events: bind (first validated address), rebind (validated move), challenge (BIND_CHALLENGE sent), confirm (valid BIND_CONFIRM, answered with BIND_ACK).',
  },
  {
    name: 'wzp_relay_handshake_duration_seconds',
    type: 'histogram',
    labels: [],
    help: 'WebSocket open to CallAnswer.',
  },
  {
    name: 'wzp_relay_auth_attempts_total',
    type: 'counter',
    labels: ['result'],
    help: 'Access token checks (ok/fail).',
  },
  {
    name: 'wzp_relay_signal_messages_total',
    type: 'counter',
    labels: ['direction'],
    help: 'Signalling messages received (in) and sent (out).',
  },
  {
    name: 'wzp_relay_signal_errors_total',
    type: 'counter',
    labels: ['code'],
    help: 'Signalling errors answered with an Error message, by code.',
  },
  {
    name: 'wzp_relay_signal_frame_seconds',
    type: 'histogram',
    labels: [],
    help: 'Synchronous time spent on one received signalling frame (scan, decode, validation, dispatch): what one message blocks the event loop.',
  },
  {
    name: 'wzp_relay_signal_frame_cpu_seconds',
    type: 'histogram',
    labels: [],
    help: "CPU time (user + system) of the main thread spent on one received signalling frame (process.threadCpuUsage where Node has it, else /proc/thread-self/stat in 10 ms ticks on Linux, else the whole process's): the same section as wzp_relay_signal_frame_seconds without the time the thread was not scheduled.",
  },
  {
    name: 'wzp_relay_frame_reclaims_total',
    type: 'counter',
    labels: [],
    help: 'Scavenges (young-generation GCs, ~1 ms) the main thread requested to free the buffers of large received WebSocket frames: one per 8 MiB of frames of 64 KiB or more, at most every 20 ms (docs/operator.md, "Targets").',
  },
  {
    name: 'wzp_relay_signal_connections',
    type: 'gauge',
    labels: [],
    help: 'Open TCP connections on the signalling port (clients, federation, not yet upgraded).',
  },
  {
    name: 'wzp_relay_connections_refused_total',
    type: 'counter',
    labels: ['reason'],
    help: 'TCP connections on the signalling port closed by a source limit: per_ip (max_connections_per_ip), capacity (max_connections, nothing evictable), evicted (an unauthenticated connection closed to make room), header_timeout (no complete HTTP request in http_header_timeout_ms).',
  },
  {
    name: 'wzp_relay_sessions_ended_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Ended sessions by reason (hangup, ws_close, timeout, shutdown, error, moved: the room moved to another relay).',
  },
  {
    name: 'wzp_relay_quality_tier',
    type: 'gauge',
    labels: ['tier'],
    help: 'Participants per quality tier.',
  },
  {
    name: 'wzp_relay_quality_directives_total',
    type: 'counter',
    labels: [],
    help: 'QualityDirective broadcasts (room tier changes).',
  },
  {
    name: 'wzp_relay_media_policed_total',
    type: 'counter',
    labels: ['kind', 'tier'],
    help: 'Media packets dropped by policing, by kind (audio, video) and first failed tier (A bitrate, B packet rate, C timestamp drift, D payload size, E absolute cap).',
  },
  {
    name: 'wzp_relay_policy_actions_total',
    type: 'counter',
    labels: ['action'],
    help: 'Policing escalation: warn (first violating second, Error MEDIA_POLICED sent), hangup (Hangup PolicyViolation), cooldown_refused (a join refused during the cool-down), observed (over-limit packets forwarded in mode observe).',
  },
  {
    name: 'wzp_relay_pli_total',
    type: 'counter',
    labels: ['result'],
    help: 'PictureLossIndications forwarded, suppressed or without a stream owner.',
  },
  {
    name: 'wzp_relay_keyframe_cache_hits_total',
    type: 'counter',
    labels: [],
    help: 'Cached keyframes replayed to a joiner (as FULL frames, after its BIND).',
  },
  {
    name: 'wzp_relay_keyframe_cache_misses_total',
    type: 'counter',
    labels: [],
    help: 'Joiners that would get a video layer with no keyframe of it cached.',
  },
  {
    name: 'wzp_relay_keyframe_cache_bytes',
    type: 'gauge',
    labels: [],
    help: 'Bytes of complete keyframes held by the keyframe cache.',
  },
  {
    name: 'wzp_relay_keyframe_cache_evictions_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Keyframes evicted by the room or relay bound (reason="bound"), or not cached because larger than the per-stream bound (reason="oversize").',
  },
  {
    name: 'wzp_relay_layer_switches_total',
    type: 'counter',
    labels: ['direction'],
    help: 'Simulcast layer switches of (sender, receiver) flows, up or down.',
  },
  {
    name: 'wzp_relay_forwarded_bytes_total',
    type: 'counter',
    labels: ['media_type'],
    help: 'Bytes of compact frames forwarded to receivers, by media type (video savings of simulcast show here).',
  },
  {
    name: 'wzp_relay_resync_requests_total',
    type: 'counter',
    labels: [],
    help: "ResyncRequests applied (the sender's frames go FULL to that receiver for resync_full_ms).",
  },
  {
    name: 'wzp_relay_full_expansions_total',
    type: 'counter',
    labels: ['reason'],
    help: 'MINI frames sent expanded to FULL, per receiver: chain (the receiver missed the previous frame: join, layer switch, subscription, resync), resync (resync_full_ms window), anchor (every resync_anchor_frames frames).',
  },
  {
    name: 'wzp_federation_peer_status',
    type: 'gauge',
    labels: ['peer'],
    help: 'Federation link state per configured peer (1 up, 0 down).',
  },
  {
    name: 'wzp_federation_peer_rtt_ms',
    type: 'gauge',
    labels: ['peer'],
    help: 'Round-trip time of the last federation heartbeat, in milliseconds.',
  },
  {
    name: 'wzp_federation_packets_forwarded_total',
    type: 'counter',
    labels: ['peer', 'direction'],
    help: 'Federation media entries received from (in) and sent to (out) a peer.',
  },
  {
    name: 'wzp_federation_packets_deduped_total',
    type: 'counter',
    labels: [],
    help: 'Federation media entries dropped as duplicates (already seen or older than the replay window).',
  },
  {
    name: 'wzp_federation_layers_filtered_total',
    type: 'counter',
    labels: [],
    help: 'Video entries not sent on a federation link because no receiver behind it needs that layer (FederationLayerDemand).',
  },
  {
    name: 'wzp_federation_layer_demand_rises_total',
    type: 'counter',
    labels: [],
    help: "Rises of a link's FederationLayerDemand for a local sender; each asks that sender for a keyframe of every newly admitted layer.",
  },
  {
    name: 'wzp_federation_packets_rate_limited_total',
    type: 'counter',
    labels: ['scope'],
    help: 'Federation media entries dropped by the per-peer or per-room rate limit.',
  },
  {
    name: 'wzp_federation_packets_dropped_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Federation datagrams or entries dropped, by reason (unbound, malformed, loop, unknown_room, unknown_sender, hop_limit).',
  },
  {
    name: 'wzp_federation_active_rooms',
    type: 'gauge',
    labels: [],
    help: 'Global rooms announced active by at least one peer.',
  },
  {
    name: 'wzp_federation_frame_seconds',
    type: 'histogram',
    labels: [],
    help: 'Synchronous time spent on one received federation WebSocket frame: during the handshake its scan, decode and the handshake step it completes (signature checks, replies, installing the link), on an installed link its scan, decode and dispatch. What one federation message blocks the event loop.',
  },
  {
    name: 'wzp_federation_frame_cpu_seconds',
    type: 'histogram',
    labels: [],
    help: 'CPU time (user + system) of the main thread spent on one received federation frame (the clock of wzp_relay_signal_frame_cpu_seconds): the same section as wzp_federation_frame_seconds without the time the thread was not scheduled.',
  },
  {
    name: 'wzp_federation_link_events_total',
    type: 'counter',
    labels: ['event'],
    help: 'Federation link events (up, down, refused_unknown_peer, refused_wrong_key, refused_bad_challenge: a key not proved (a forged FederationAuth or FederationChallenge), refused_other: any other failed handshake (timeout, protocol version, decode limits), duplicate, signal_rate_limited, signal_rejected: control frames refused as undecodable, over the decode limits or budget, or unexpected, idle_closed: a link opened from the fleet directory closed unused).',
  },
  {
    name: 'wzp_relay_ws_media_connections',
    type: 'gauge',
    labels: [],
    help: 'Open WebSocket media connections (/v2/media).',
  },
  {
    name: 'wzp_relay_ws_media_datagrams_total',
    type: 'counter',
    labels: ['direction'],
    help: 'Datagrams carried by WebSocket media connections (in/out).',
  },
  {
    name: 'wzp_relay_ws_media_dropped_total',
    type: 'counter',
    labels: ['reason'],
    help: 'WebSocket media datagrams dropped: backpressure (receiver over ws_media_max_buffered_bytes), closed, bad_frame (text frame), bind_timeout (connections closed without a BIND), worker_queue (more than 4096 datagrams for WebSocket receivers queued by one media worker in one event-loop turn).',
  },
  {
    name: 'wzp_media_worker_packets_total',
    type: 'counter',
    labels: ['worker'],
    help: 'Datagrams received by each media worker (replacements continue the count).',
  },
  {
    name: 'wzp_media_worker_cpu_seconds_total',
    type: 'counter',
    labels: ['worker'],
    help: 'CPU seconds (user + system) of each media worker thread.',
  },
  {
    name: 'wzp_media_worker_event_loop_delay_seconds',
    type: 'gauge',
    labels: ['worker', 'stat'],
    help: 'Event-loop delay of each media worker over its last heartbeat period (stat p99 or max): how late its timers ran, from a 10 ms monitor while the worker hosts sessions, from its heartbeat alone while it hosts none.',
  },
  {
    name: 'wzp_media_worker_context_switches_total',
    type: 'counter',
    labels: ['worker', 'kind'],
    help: 'Context switches of each media worker thread (Linux), kind voluntary (it slept: one per wake-up) or involuntary (it was preempted); updated at each heartbeat.',
  },
  {
    name: 'wzp_media_worker_sessions',
    type: 'gauge',
    labels: ['worker'],
    help: 'Sessions held by each media worker.',
  },
  {
    name: 'wzp_media_worker_up',
    type: 'gauge',
    labels: ['worker'],
    help: 'Media worker serving (1) or down / restarting (0).',
  },
  {
    name: 'wzp_media_worker_stuck',
    type: 'gauge',
    labels: ['worker'],
    help: 'Media worker whose heartbeat is older than media_worker_stall_ms (1); /readyz fails meanwhile.',
  },
  {
    name: 'wzp_media_worker_restarts_total',
    type: 'counter',
    labels: ['worker'],
    help: 'Media workers replaced after they threw or exited.',
  },
  {
    name: 'wzp_fleet_directory_up',
    type: 'gauge',
    labels: [],
    help: 'Fleet directory (Redis) reachable: 1, else 0 (docs/fleet.md).',
  },
  {
    name: 'wzp_fleet_directory_latency_seconds',
    type: 'histogram',
    labels: ['op'],
    help: 'Latency of fleet directory operations (register, poll, get_claim, epoch, claim, cas, release).',
  },
  {
    name: 'wzp_fleet_directory_errors_total',
    type: 'counter',
    labels: ['op'],
    help: 'Failed fleet directory operations, by operation.',
  },
  {
    name: 'wzp_fleet_relays',
    type: 'gauge',
    labels: [],
    help: 'Live, verified relays in the fleet directory as this relay sees it (itself included).',
  },
  {
    name: 'wzp_fleet_rooms_homed',
    type: 'gauge',
    labels: [],
    help: 'Rooms whose home is this relay (it holds and refreshes their claim).',
  },
  {
    name: 'wzp_fleet_rooms_bridged',
    type: 'gauge',
    labels: [],
    help: 'Rooms served here bridged to their home on another relay.',
  },
  {
    name: 'wzp_fleet_redirects_total',
    type: 'counter',
    labels: [],
    help: "Clients sent a Redirect to their room's home.",
  },
  {
    name: 'wzp_fleet_bridges_total',
    type: 'counter',
    labels: [],
    help: 'Joins served here by bridging the room to its home.',
  },
  {
    name: 'wzp_fleet_rehomes_total',
    type: 'counter',
    labels: [],
    help: 'Rooms this relay re-homed because their home was dead (epoch + 1).',
  },
  {
    name: 'wzp_fleet_fenced_total',
    type: 'counter',
    labels: [],
    help: 'Stale room copies closed here because the room moved (a newer epoch).',
  },
  {
    name: 'wzp_fleet_placements_refused_total',
    type: 'counter',
    labels: [],
    help: 'New rooms refused because the directory was unreachable (fleet_on_directory_down = "refuse").',
  },
  {
    name: 'wzp_fleet_records_rejected_total',
    type: 'counter',
    labels: ['why'],
    help: 'Directory records ignored: malformed, untrusted, bad_signature, stale, mismatch.',
  },
  {
    name: 'wzp_hub_registered',
    type: 'gauge',
    labels: [],
    help: "Identities registered on this relay's direct-call hub.",
  },
  {
    name: 'wzp_calls_total',
    type: 'counter',
    labels: ['outcome'],
    help: 'Direct calls that ended, by outcome (answered, rejected, cancelled, timeout, busy, unreachable, failed).',
  },
  {
    name: 'wzp_call_ring_seconds',
    type: 'histogram',
    labels: [],
    help: 'Time from a DirectCallOffer to its answer (accept or reject).',
  },
  {
    name: 'wzp_hub_rejections_total',
    type: 'counter',
    labels: ['code'],
    help: 'Hub messages refused with a typed error, by error code (limits, bad signatures, non-parties).',
  },
  {
    name: 'wzp_call_signals_forwarded_total',
    type: 'counter',
    labels: ['result'],
    help: 'Call signals across federation links (sent, directory, delivered, transit, loop, hop_limit, unroutable, duplicate).',
  },
];

const RING_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60];

const HANDSHAKE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const DIRECTORY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1];
const SIGNAL_FRAME_BUCKETS = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
export const FANOUT_BUCKETS = [0, 1, 2, 3, 5, 10, 20, 50, 100];

export class RelayMetrics {
  readonly registry: Registry;
  readonly activeSessions: Gauge;
  readonly activeRooms: Gauge;
  readonly packetsReceived: Counter;
  readonly packetsForwarded: Counter;
  readonly bytesForwarded: Counter;
  readonly datagramsSent: Counter;
  readonly sendQueueDatagrams: Gauge;
  readonly sendQueueBytes: Gauge;
  readonly udpIo: Gauge<'path'>;
  readonly udpSendErrors: Counter<'code'>;
  readonly udpSendQueued: Counter;
  readonly udpRecvIo: Gauge<'path'>;
  readonly udpSendSockets: Gauge;
  readonly udpRecvSyscalls: Counter;
  readonly udpRecvBatches: Counter;
  readonly dropped: Counter<'reason'>;
  readonly malformed: Counter<'code'>;
  /** Fan-out histogram read from the engine's plain counts at scrape time. */
  fanoutSource: () => ArrayLike<number> = () => [];
  readonly trunkFrames: Counter;
  readonly trunkEntries: Counter;
  readonly binds: Counter<'kind'>;
  readonly handshakeSeconds: Histogram;
  readonly authAttempts: Counter<'result'>;
  readonly signalMessages: Counter<'direction'>;
  /** `signalMessages` children, looked up once (counted per frame). */
  readonly signalMessagesIn: { inc(v?: number): void };
  readonly signalMessagesOut: { inc(v?: number): void };
  readonly signalErrors: Counter<'code'>;
  readonly sessionsEnded: Counter<'reason'>;
  readonly signalFrameSeconds: Histogram;
  readonly signalFrameCpuSeconds: Histogram;
  readonly signalConnections: Gauge;
  readonly frameReclaims: Counter;
  readonly connectionsRefused: Counter<'reason'>;
  readonly qualityTier: Gauge<'tier'>;
  readonly directives: Counter;
  readonly pli: Counter<'result'>;
  readonly keyframeHits: Counter;
  readonly keyframeMisses: Counter;
  readonly keyframeBytes: Gauge;
  readonly keyframeEvictions: Counter<'reason'>;
  readonly layerSwitches: Counter<'direction'>;
  readonly forwardedBytes: Counter<'media_type'>;
  readonly resyncs: Counter;
  readonly fullExpansions: Counter<'reason'>;
  readonly policed: Counter<'kind' | 'tier'>;
  readonly policyActions: Counter<'action'>;
  readonly fedPeerStatus: Gauge<'peer'>;
  readonly fedPeerRtt: Gauge<'peer'>;
  readonly fedPackets: Counter<'peer' | 'direction'>;
  readonly fedDeduped: Counter;
  readonly fedLayersFiltered: Counter;
  readonly fedDemandRises: Counter;
  readonly fedRateLimited: Counter<'scope'>;
  readonly fedDropped: Counter<'reason'>;
  readonly fedActiveRooms: Gauge;
  readonly fedLinkEvents: Counter<'event'>;
  readonly fedFrameSeconds: Histogram;
  readonly fedFrameCpuSeconds: Histogram;
  readonly wsMediaConnections: Gauge;
  readonly wsMediaDatagrams: Counter<'direction'>;
  readonly wsMediaDropped: Counter<'reason'>;
  readonly fleetUp: Gauge;
  readonly fleetLatency: Histogram<'op'>;
  readonly fleetErrors: Counter<'op'>;
  readonly fleetRelays: Gauge;
  readonly fleetHomed: Gauge;
  readonly fleetBridged: Gauge;
  readonly fleetRedirects: Counter;
  readonly fleetBridges: Counter;
  readonly fleetRehomes: Counter;
  readonly fleetFenced: Counter;
  readonly fleetRefused: Counter;
  readonly fleetRejected: Counter<'why'>;
  readonly hubRegistered: Gauge;
  readonly calls: Counter<'outcome'>;
  readonly callRingSeconds: Histogram;
  readonly hubRejections: Counter<'code'>;
  readonly callForwards: Counter<'result'>;
  readonly workerPackets: Counter<'worker'>;
  readonly workerCpu: Counter<'worker'>;
  readonly workerSwitches: Counter<'worker' | 'kind'>;
  readonly workerLoopDelay: Gauge<'worker' | 'stat'>;
  readonly workerSessions: Gauge<'worker'>;
  readonly workerUp: Gauge<'worker'>;
  readonly workerStuck: Gauge<'worker'>;
  readonly workerRestarts: Counter<'worker'>;
  private readonly syncHooks: (() => void)[] = [];

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    const registers = [registry];
    const help = (name: string): string => METRIC_DOCS.find((m) => m.name === name)?.help ?? name;
    const counter = <L extends string>(name: string, labelNames: L[] = []) =>
      new Counter<L>({ name, help: help(name), labelNames, registers });
    const gauge = <L extends string>(name: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help: help(name), labelNames, registers });
    this.activeSessions = gauge('wzp_relay_active_sessions');
    this.activeRooms = gauge('wzp_relay_active_rooms');
    this.packetsReceived = counter('wzp_relay_packets_received_total');
    this.packetsForwarded = counter('wzp_relay_packets_forwarded_total');
    this.bytesForwarded = counter('wzp_relay_bytes_forwarded_total');
    this.datagramsSent = counter('wzp_relay_datagrams_sent_total');
    this.sendQueueDatagrams = gauge('wzp_relay_udp_send_queue_datagrams');
    this.sendQueueBytes = gauge('wzp_relay_udp_send_queue_bytes');
    this.udpIo = gauge('wzp_relay_udp_io', ['path']);
    this.udpSendErrors = counter('wzp_relay_udp_send_errors_total', ['code']);
    this.udpSendQueued = counter('wzp_relay_udp_send_queued_total');
    this.udpRecvIo = gauge('wzp_relay_udp_recv_io', ['path']);
    this.udpSendSockets = gauge('wzp_relay_udp_send_sockets');
    this.udpRecvSyscalls = counter('wzp_relay_udp_recv_syscalls_total');
    this.udpRecvBatches = counter('wzp_relay_udp_recv_batches_total');
    this.dropped = counter('wzp_relay_datagrams_dropped_total', ['reason']);
    this.malformed = counter('wzp_relay_malformed_datagrams_total', ['code']);
    registry.registerMetric(
      externalHistogram(
        'wzp_relay_fanout_recipients',
        help('wzp_relay_fanout_recipients'),
        FANOUT_BUCKETS,
        () => this.fanoutSource(),
      ),
    );
    this.trunkFrames = counter('wzp_relay_trunk_frames_sent_total');
    this.trunkEntries = counter('wzp_relay_trunk_entries_sent_total');
    this.binds = counter('wzp_relay_binds_total', ['kind']);
    this.handshakeSeconds = new Histogram({
      name: 'wzp_relay_handshake_duration_seconds',
      help: help('wzp_relay_handshake_duration_seconds'),
      buckets: HANDSHAKE_BUCKETS,
      registers,
    });
    this.authAttempts = counter('wzp_relay_auth_attempts_total', ['result']);
    this.signalMessages = counter('wzp_relay_signal_messages_total', ['direction']);
    this.signalMessagesIn = this.signalMessages.labels('in');
    this.signalMessagesOut = this.signalMessages.labels('out');
    this.signalErrors = counter('wzp_relay_signal_errors_total', ['code']);
    this.sessionsEnded = counter('wzp_relay_sessions_ended_total', ['reason']);
    this.signalFrameSeconds = new Histogram({
      name: 'wzp_relay_signal_frame_seconds',
      help: help('wzp_relay_signal_frame_seconds'),
      buckets: SIGNAL_FRAME_BUCKETS,
      registers,
    });
    this.signalFrameCpuSeconds = new Histogram({
      name: 'wzp_relay_signal_frame_cpu_seconds',
      help: help('wzp_relay_signal_frame_cpu_seconds'),
      buckets: SIGNAL_FRAME_BUCKETS,
      registers,
    });
    this.signalConnections = gauge('wzp_relay_signal_connections');
    this.frameReclaims = counter('wzp_relay_frame_reclaims_total');
    this.connectionsRefused = counter('wzp_relay_connections_refused_total', ['reason']);
    this.qualityTier = gauge('wzp_relay_quality_tier', ['tier']);
    this.directives = counter('wzp_relay_quality_directives_total');
    this.pli = counter('wzp_relay_pli_total', ['result']);
    this.keyframeHits = counter('wzp_relay_keyframe_cache_hits_total');
    this.keyframeMisses = counter('wzp_relay_keyframe_cache_misses_total');
    this.keyframeBytes = gauge('wzp_relay_keyframe_cache_bytes');
    this.keyframeEvictions = counter('wzp_relay_keyframe_cache_evictions_total', ['reason']);
    this.layerSwitches = counter('wzp_relay_layer_switches_total', ['direction']);
    this.forwardedBytes = counter('wzp_relay_forwarded_bytes_total', ['media_type']);
    this.resyncs = counter('wzp_relay_resync_requests_total');
    this.fullExpansions = counter('wzp_relay_full_expansions_total', ['reason']);
    this.policed = counter('wzp_relay_media_policed_total', ['kind', 'tier']);
    this.policyActions = counter('wzp_relay_policy_actions_total', ['action']);
    this.fedPeerStatus = gauge('wzp_federation_peer_status', ['peer']);
    this.fedPeerRtt = gauge('wzp_federation_peer_rtt_ms', ['peer']);
    this.fedPackets = counter('wzp_federation_packets_forwarded_total', ['peer', 'direction']);
    this.fedDeduped = counter('wzp_federation_packets_deduped_total');
    this.fedLayersFiltered = counter('wzp_federation_layers_filtered_total');
    this.fedDemandRises = counter('wzp_federation_layer_demand_rises_total');
    this.fedRateLimited = counter('wzp_federation_packets_rate_limited_total', ['scope']);
    this.fedDropped = counter('wzp_federation_packets_dropped_total', ['reason']);
    this.fedActiveRooms = gauge('wzp_federation_active_rooms');
    this.fedLinkEvents = counter('wzp_federation_link_events_total', ['event']);
    this.fedFrameSeconds = new Histogram({
      name: 'wzp_federation_frame_seconds',
      help: help('wzp_federation_frame_seconds'),
      buckets: SIGNAL_FRAME_BUCKETS,
      registers,
    });
    this.fedFrameCpuSeconds = new Histogram({
      name: 'wzp_federation_frame_cpu_seconds',
      help: help('wzp_federation_frame_cpu_seconds'),
      buckets: SIGNAL_FRAME_BUCKETS,
      registers,
    });
    this.wsMediaConnections = gauge('wzp_relay_ws_media_connections');
    this.wsMediaDatagrams = counter('wzp_relay_ws_media_datagrams_total', ['direction']);
    this.wsMediaDropped = counter('wzp_relay_ws_media_dropped_total', ['reason']);
    this.fleetUp = gauge('wzp_fleet_directory_up');
    this.fleetLatency = new Histogram<'op'>({
      name: 'wzp_fleet_directory_latency_seconds',
      help: help('wzp_fleet_directory_latency_seconds'),
      labelNames: ['op'],
      buckets: DIRECTORY_BUCKETS,
      registers,
    });
    this.fleetErrors = counter('wzp_fleet_directory_errors_total', ['op']);
    this.fleetRelays = gauge('wzp_fleet_relays');
    this.fleetHomed = gauge('wzp_fleet_rooms_homed');
    this.fleetBridged = gauge('wzp_fleet_rooms_bridged');
    this.fleetRedirects = counter('wzp_fleet_redirects_total');
    this.fleetBridges = counter('wzp_fleet_bridges_total');
    this.fleetRehomes = counter('wzp_fleet_rehomes_total');
    this.fleetFenced = counter('wzp_fleet_fenced_total');
    this.fleetRefused = counter('wzp_fleet_placements_refused_total');
    this.fleetRejected = counter('wzp_fleet_records_rejected_total', ['why']);
    this.hubRegistered = gauge('wzp_hub_registered');
    this.calls = counter('wzp_calls_total', ['outcome']);
    this.callRingSeconds = new Histogram({
      name: 'wzp_call_ring_seconds',
      help: help('wzp_call_ring_seconds'),
      buckets: RING_BUCKETS,
      registers,
    });
    this.hubRejections = counter('wzp_hub_rejections_total', ['code']);
    this.callForwards = counter('wzp_call_signals_forwarded_total', ['result']);
    this.workerPackets = counter('wzp_media_worker_packets_total', ['worker']);
    this.workerCpu = counter('wzp_media_worker_cpu_seconds_total', ['worker']);
    this.workerSwitches = counter('wzp_media_worker_context_switches_total', ['worker', 'kind']);
    this.workerLoopDelay = gauge('wzp_media_worker_event_loop_delay_seconds', ['worker', 'stat']);
    this.workerSessions = gauge('wzp_media_worker_sessions', ['worker']);
    this.workerUp = gauge('wzp_media_worker_up', ['worker']);
    this.workerStuck = gauge('wzp_media_worker_stuck', ['worker']);
    this.workerRestarts = counter('wzp_media_worker_restarts_total', ['worker']);
    if (options.defaultMetrics === true) {
      collectDefaultMetrics({ register: registry, prefix: 'wzp_' });
    }
  }

  /** Registers a function run before every scrape (to copy hot-path counters). */
  onScrape(hook: () => void): void {
    this.syncHooks.push(hook);
  }

  /** The text exposition, after running the scrape hooks. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    for (const hook of this.syncHooks) {
      hook();
    }
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * A histogram whose observations are kept elsewhere as plain counts:
 * `counts()[v]` = observations of the integer value v (the last index also
 * holds everything larger). Nothing is done per observation; the buckets
 * are computed at scrape time.
 */
function externalHistogram(
  name: string,
  help: string,
  buckets: readonly number[],
  counts: () => ArrayLike<number>,
): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    collect: undefined,
    reset() {},
    get() {
      const c = counts();
      let total = 0;
      let sum = 0;
      for (let v = 0; v < c.length; v++) {
        const n = c[v] ?? 0;
        total += n;
        sum += n * v;
      }
      const values = buckets.map((le) => {
        let n = 0;
        for (let v = 0; v <= le && v < c.length; v++) {
          n += c[v] ?? 0;
        }
        return { value: n, labels: { le }, metricName: `${name}_bucket` };
      });
      values.push({
        value: total,
        labels: { le: '+Inf' as unknown as number },
        metricName: `${name}_bucket`,
      });
      values.push({ value: sum, labels: {} as { le: number }, metricName: `${name}_sum` });
      values.push({ value: total, labels: {} as { le: number }, metricName: `${name}_count` });
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  return metric as unknown as Metric;
}

/**
 * Copies absolute totals kept elsewhere (engine counters, worker stats)
 * into prom-client counters by incrementing each series with its growth
 * since the previous sync.
 *
 * A series is keyed by its counter object and its label values, never by
 * the child `labels()` returns: prom-client hands out a new child object on
 * every call, so a child-keyed memory never matches and every scrape would
 * add the whole total again.
 */
export class CounterBridge {
  private readonly last = new Map<Counter<string>, Map<string, number>>();

  /** Sets the series `labelValues` (in the counter's label order) of `counter` to `total`. */
  set<L extends string>(counter: Counter<L>, total: number, ...labelValues: string[]): void {
    const c = counter as unknown as Counter<string>;
    let series = this.last.get(c);
    if (series === undefined) {
      series = new Map();
      this.last.set(c, series);
    }
    const key = labelValues.join('\u0000');
    const prev = series.get(key) ?? 0;
    if (total > prev) {
      if (labelValues.length === 0) {
        c.inc(total - prev);
      } else {
        c.labels(...labelValues).inc(total - prev);
      }
      series.set(key, total);
    }
  }
}

/** Markdown table of every metric (docs/operator.md). */
export function renderMetricsDocs(): string {
  const rows = METRIC_DOCS.map(
    (m) =>
      `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ') || '—'} | ${m.help} |`,
  );
  return ['| metric | type | labels | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
