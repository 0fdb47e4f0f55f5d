/**
 * Relay configuration: embedded defaults < TOML file < WZP_* environment
 * variables < command-line flags. Validated with zod; unknown keys are
 * rejected with the source and a "did you mean" suggestion.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { WzpError } from '../errors/index.js';

const port = z.number().int().min(0).max(65535);
const positiveMs = z
  .number()
  .int()
  .min(1)
  .max(24 * 3600 * 1000);

/** Every key: schema with its default, and a one-line description. */
const FIELDS = {
  udp_host: [z.string().min(1).default('0.0.0.0'), 'Address the media UDP socket binds to.'],
  udp_port: [port.default(4433), 'Media UDP port (0 = any free port).'],
  signal_host: [
    z.string().min(1).default('0.0.0.0'),
    'Address the signalling WebSocket server binds to.',
  ],
  signal_port: [
    port.default(4434),
    'Signalling port; clients connect to ws://host:port/v2/signal.',
  ],
  http_host: [
    z.string().min(1).default('0.0.0.0'),
    'Address of the metrics/health/admin HTTP server.',
  ],
  http_port: [port.default(9090), 'Port of /metrics, /healthz, /readyz and /v2/rooms.'],
  advertised_udp_port: [
    port.optional(),
    'UDP port told to clients in CallAnswer when it differs from udp_port (NAT, port mapping); media worker i is told advertised_udp_port + i.',
  ],
  max_sessions: [
    z.number().int().min(1).max(1_000_000).default(1000),
    'Most sessions across all rooms.',
  ],
  max_participants_per_room: [
    z.number().int().min(1).max(65535).default(100),
    'Most participants in one room.',
  ],
  session_timeout_ms: [
    positiveMs.default(30_000),
    'A session without any datagram for this long ends.',
  ],
  handshake_timeout_ms: [
    positiveMs.default(10_000),
    'Time allowed from WebSocket open to CallAnswer; then the TCP connection is closed at once.',
  ],
  trunking: [
    z.boolean().default(false),
    'Batch forwarded frames per receiver (10 entries / MTU / flush deadline).',
  ],
  trunk_max_entries: [
    z.number().int().min(1).max(64).default(10),
    'Most entries in one trunk datagram.',
  ],
  trunk_mtu: [
    z.number().int().min(64).max(65507).default(1200),
    'Most bytes in one trunk datagram.',
  ],
  trunk_flush_ms: [
    z.number().int().min(1).max(1000).default(5),
    'A batch leaves at most this long after its first entry.',
  ],
  auth_secret: [
    z.string().min(16).optional(),
    'HS256 secret; when set, clients must send an AuthToken first.',
  ],
  auth_issuer: [z.string().min(1).optional(), 'Required `iss` claim of access tokens, if set.'],
  pli_suppress_ms: [
    z.number().int().min(0).max(60_000).default(200),
    'Window in which repeated PictureLossIndications for one stream are dropped.',
  ],
  resync_anchor_frames: [
    z.number().int().min(0).max(65_535).default(10),
    'Anchored FULL: every this many frames of a sender go FULL to every receiver (MINI chains resync without asking); 0 off.',
  ],
  resync_full_ms: [
    z.number().int().min(0).max(600_000).default(5000),
    "After a receiver's ResyncRequest, the sender's frames go FULL to it for this long (ms).",
  ],
  keyframe_cache_stream_bytes: [
    z.number().int().min(0).max(64_000_000).default(200_000),
    'Keyframe cache: largest keyframe cached per (sender, video stream); larger ones are not cached.',
  ],
  keyframe_cache_room_bytes: [
    z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .default(4_000_000),
    "Keyframe cache: bytes held per room; over it the room's oldest keyframes are evicted.",
  ],
  keyframe_cache_relay_bytes: [
    z
      .number()
      .int()
      .min(0)
      .max(1 << 31)
      .default(64_000_000),
    "Keyframe cache: bytes held by the relay; over it the relay's oldest keyframes are evicted.",
  ],
  shutdown_timeout_ms: [positiveMs.default(5000), 'Upper bound of a graceful shutdown.'],
  // ── hostile media: return-path validation and media policing (docs/operator.md) ──
  bind_challenge_ttl_ms: [
    z.number().int().min(100).max(600_000).default(5000),
    'A BIND_CHALLENGE must be confirmed within this time (return-path validation).',
  ],
  bind_challenge_rate: [
    z.number().min(0.1).max(10_000).default(10),
    'BIND_CHALLENGEs per second one session can provoke (burst 2x); bounds reflection at a spoofed source.',
  ],
  bind_unknown_rate_per_source: [
    z.number().min(0.1).max(1_000_000).default(20),
    'BINDs/CONFIRMs with unknown tokens per second per source IP (burst 2x); a source over it has all bind datagrams dropped until it refills.',
  ],
  media_policing: [
    z.enum(['off', 'observe', 'drop', 'hangup']).default('hangup'),
    'Media policing (tiers A-E): off; observe (count only); drop (drop over-limit packets); hangup (drop, warn, then hang up a sustained violator with PolicyViolation).',
  ],
  policing_burst_ms: [
    z.number().int().min(50).max(60_000).default(1000),
    'Depth of the tier A/B token buckets, in milliseconds of their rate.',
  ],
  policing_video_headroom: [
    z.number().min(1).max(10).default(1.5),
    'Video tier A rate = announced video_bitrate_kbps x this (FEC, keyframes).',
  ],
  policing_video_default_kbps: [
    z.number().int().min(0).max(1_000_000).default(2500),
    'Video bitrate assumed when no offered profile announces video_bitrate_kbps (0 = no video allowed).',
  ],
  policing_audio_cap_kbps: [
    z.number().int().min(1).max(1_000_000).default(256),
    'Tier E: absolute audio cap per session, whatever the profile (burst policing_burst_ms).',
  ],
  policing_video_cap_kbps: [
    z.number().int().min(1).max(10_000_000).default(8000),
    'Tier E: absolute video cap per session, whatever the announcement.',
  ],
  policing_strikes: [
    z.number().int().min(1).max(3600).default(5),
    'Violating seconds (net of clean ones) before a sustained violator is hung up (media_policing = hangup).',
  ],
  policing_cooldown_ms: [
    z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600 * 1000)
      .default(60_000),
    'After a PolicyViolation hangup, the same identity may not rejoin for this long.',
  ],

  log_level: [
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    'pino log level.',
  ],
  relay_label: [
    z.string().min(1).max(64).optional(),
    'Human label of this relay (shown to federated peers).',
  ],
  data_dir: [
    z.string().min(1).default('.wzp-data'),
    'Directory of persistent state (the relay identity key).',
  ],
  signal_max_frame_bytes: [
    z
      .number()
      .int()
      .min(1024)
      .max(16 << 20)
      .default(1 << 20),
    'Largest signalling frame accepted.',
  ],
  signal_rate_per_sec: [
    z.number().min(1).max(10_000).default(50),
    'Signalling messages per second per connection (burst 2x).',
  ],
  signal_budget_bytes_per_sec: [
    z
      .number()
      .int()
      .min(1024)
      .max(1 << 30)
      .default(64 << 10),
    'Decode budget of one signalling connection per second: each frame costs 64 + its bytes + 16 per msgpack item. A connection over budget is closed (SIGNAL_OVER_BUDGET).',
  ],
  signal_budget_burst_bytes: [
    z
      .number()
      .int()
      .min(1024)
      .max(1 << 30)
      .default(2 << 20),
    'Burst of the signalling decode budget (must hold the largest frame a client may send).',
  ],
  signal_send_buffer_bytes: [
    z
      .number()
      .int()
      .min(4096)
      .max(1 << 30)
      .default(1 << 20),
    'Most bytes waiting in one WebSocket send buffer; a peer that does not read and lets it grow past this is closed (SIGNAL_SLOW_READER).',
  ],
  max_connections_per_ip: [
    z.number().int().min(1).max(1_000_000).default(128),
    'Concurrent TCP connections from one source address on the signalling port; more are closed at accept (TRANSPORT_CONNECTION_LIMIT).',
  ],
  max_connections: [
    z.number().int().min(0).max(10_000_000).default(0),
    'Concurrent TCP connections on the signalling port (0 = the soft nofile limit minus 64). At capacity a new connection evicts the oldest one that has not completed its handshake.',
  ],
  http_header_timeout_ms: [
    z.number().int().min(100).max(10_000).default(5000),
    'Time a client has to send its HTTP request headers (upgrade included), on the signalling and the metrics port.',
  ],
  max_sessions_per_subject: [
    z.number().int().min(1).max(1_000_000).default(16),
    'Concurrent sessions of one access token subject (`sub`); more are refused (SESSION_LIMIT_SUBJECT).',
  ],
  max_sessions_per_identity: [
    z.number().int().min(1).max(1_000_000).default(4),
    'Concurrent sessions of one identity key; more are refused (SESSION_LIMIT_IDENTITY).',
  ],
  udp_buffer_bytes: [
    z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .default(512 << 10),
    'SO_RCVBUF/SO_SNDBUF requested for the media socket (0 = system default). It bounds the queueing delay under overload: a larger buffer turns overload into seconds of latency instead of loss (docs/operator.md).',
  ],
  web_app: [
    z.boolean().default(true),
    'Serve the web app at http://host:signal_port/ and the dashboard at http://host:http_port/dashboard (docs/web.md).',
  ],
  ws_media_max_buffered_bytes: [
    z
      .number()
      .int()
      .min(4096)
      .max(64 << 20)
      .default(256 << 10),
    'WebSocket media (/v2/media): datagrams to a receiver are dropped (and counted) while this many bytes are still unsent to it, like loss on a UDP path; bounds memory per connection.',
  ],
  udp_io: [
    z.enum(['auto', 'dgram', 'native']).default('auto'),
    'Media send path: "native" = the sendmmsg add-on (one system call per fan-out; start fails if it is not built), "dgram" = node:dgram, "auto" = native when the add-on loaded, else dgram.',
  ],
  media_workers: [
    z.number().int().min(0).max(256).default(0),
    'Media worker threads, each with its own UDP port (udp_port + i when udp_port is set); 0 = one per available core. The main thread never forwards media.',
  ],
  media_worker_stall_ms: [
    z.number().int().min(100).max(600_000).default(2000),
    'A media worker whose event loop does not turn for this long is stuck: logged, and /readyz fails until it recovers.',
  ],
  peers: [
    z.array(peerSchema()).max(64).default([]),
    'Federation peers: [[peers]] with label, public_key (64 hex) or fingerprint, and url (ws://host:port/v2/federation) to dial; a peer without url is only accepted.',
  ],
  global_rooms: [
    z.array(z.string().min(1).max(128)).max(1024).default([]),
    'Rooms bridged with every federation peer.',
  ],
  federation_heartbeat_ms: [
    z.number().int().min(50).max(60_000).default(2000),
    'Heartbeat (Ping) interval on federation links.',
  ],
  federation_dead_ms: [
    z.number().int().min(200).max(300_000).default(15_000),
    'A federation link silent for this long is declared dead.',
  ],
  federation_backoff_initial_ms: [
    z.number().int().min(10).max(60_000).default(1000),
    'First reconnect delay of a federation dialer (doubles, with jitter).',
  ],
  federation_backoff_max_ms: [
    z.number().int().min(10).max(600_000).default(30_000),
    'Longest reconnect delay of a federation dialer.',
  ],
  federation_max_hops: [
    z.number().int().min(1).max(16).default(8),
    'Hop limit given to federation media at its origin relay.',
  ],
  federation_peer_pps: [
    z.number().int().min(1).max(10_000_000).default(100_000),
    'Federation media entries per second accepted from one peer (burst 1 s); the rest is dropped and counted.',
  ],
  federation_room_pps: [
    z.number().int().min(1).max(10_000_000).default(20_000),
    'Federation media entries per second accepted for one global room (burst 1 s).',
  ],
  federation_signal_rate_per_sec: [
    z.number().min(1).max(100_000).default(200),
    'Signalling messages per second accepted on one federation link (burst 2x).',
  ],
  directory_url: [
    z
      .string()
      .regex(/^(memory:|rediss?:\/\/[^\s]+)$/, 'must be redis://…, rediss://… or memory:')
      .optional(),
    'Room directory of a fleet (docs/fleet.md): redis://[:password@]host:port[/db]. Unset: this relay is a fleet of one (in-memory directory).',
  ],
  fleet_mode: [
    z.enum(['redirect', 'bridge']).default('redirect'),
    "A client that reached a relay other than its room's home is redirected there (Redirect before CallAnswer) or bridged (the room is federated between the two relays on demand).",
  ],
  fleet_on_directory_down: [
    z.enum(['refuse', 'local']).default('refuse'),
    'While the directory is unreachable, a new room is refused (FLEET_DIRECTORY_UNAVAILABLE) or served locally and reconciled when it returns. Rooms already here keep running either way.',
  ],
  fleet_key: [
    z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (an Ed25519 seed)')
      .optional(),
    'Operator fleet key (Ed25519 seed, secret, the same on every relay): registry entries and room claims are signed with it and trusted iff it verifies. Without it only [[peers]] keys are trusted.',
  ],
  fleet_refresh_ms: [
    z.number().int().min(50).max(60_000).default(2000),
    'Interval of registry refresh, directory poll and room-claim refresh.',
  ],
  fleet_ttl_ms: [
    z.number().int().min(200).max(600_000).default(6000),
    'TTL of registry entries and room claims: a relay silent this long is dead and its rooms re-home on the next join.',
  ],
  fleet_link_idle_ms: [
    z.number().int().min(100).max(3_600_000).default(30_000),
    'A federation link opened from the directory closes after carrying no bridged room this long.',
  ],
  advertised_host: [
    z.string().min(1).max(253).optional(),
    'Host name or address other relays and redirected clients use to reach this relay (default: signal_host, or 127.0.0.1 when it is a wildcard).',
  ],
  advertised_signal_url: [
    z
      .string()
      .regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL')
      .optional(),
    'Public signalling URL of this relay, when it differs from ws://advertised_host:signal_port/v2/signal (a TLS proxy). Its /v2/federation twin is the federation URL.',
  ],
  presence_visibility: [
    z.enum(['contacts', 'everyone', 'nobody']).default('contacts'),
    'Who sees whom on the direct-call hub: mutual contacts only, every registered user, or nobody (call by fingerprint only).',
  ],
  hub_register_timeout_ms: [
    positiveMs.default(10_000),
    'A hub connection must send RegisterPresence within this time.',
  ],
  call_ring_timeout_ms: [
    positiveMs.default(30_000),
    'A direct call not answered within this time ends with Hangup Timeout.',
  ],
  call_route_timeout_ms: [
    positiveMs.default(5000),
    'A call to a callee on another relay that does not ring within this time ends (CALL_NOT_FOUND).',
  ],
  call_busy: [
    z.boolean().default(true),
    'A callee already in a call answers new offers with Hangup Busy (false: it may take several calls).',
  ],
  call_offers_per_minute: [
    z.number().int().min(1).max(10_000).default(10),
    'Call offers one identity may place per minute (burst the same).',
  ],
  call_max_concurrent: [
    z.number().int().min(1).max(1000).default(4),
    'Concurrent calls (ringing or active) one identity may be in.',
  ],
  call_max_ringing: [
    z.number().int().min(1).max(1000).default(3),
    'Calls that may ring one callee at once.',
  ],
  call_max_hops: [
    z.number().int().min(1).max(16).default(4),
    'Hop limit of call signals forwarded across federation links.',
  ],
  federation_signal_budget_bytes_per_sec: [
    z
      .number()
      .int()
      .min(1024)
      .max(1 << 30)
      .default(8 << 20),
    'Decode budget of one authenticated federation link per second (burst 2 s, at least 2 frames); over it the link is closed. Before authentication a link has the client budget.',
  ],
} as const satisfies Record<string, readonly [z.ZodType, string]>;

/** One `[[peers]]` entry. */
function peerSchema() {
  return z
    .strictObject({
      label: z.string().min(1).max(64),
      url: z
        .string()
        .regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL')
        .optional(),
      public_key: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (Ed25519 public key)')
        .optional(),
      fingerprint: z
        .string()
        .regex(/^([0-9a-fA-F]{4}:){7}[0-9a-fA-F]{4}$/, 'must look like xxxx:xxxx:…:xxxx (8 groups)')
        .optional(),
    })
    .refine((p) => p.public_key !== undefined || p.fingerprint !== undefined, {
      message: 'a peer needs public_key or fingerprint',
    });
}

/** A validated `[[peers]]` entry. */
export type PeerConfig = z.output<ReturnType<typeof peerSchema>>;

type Fields = typeof FIELDS;
type Key = keyof Fields;

const shape = Object.fromEntries(Object.entries(FIELDS).map(([k, [schema]]) => [k, schema])) as {
  [K in Key]: Fields[K][0];
};

export const configSchema = z.strictObject(shape);

/** The validated configuration (snake_case, as in the TOML file). */
export type RelayConfig = z.output<typeof configSchema>;
export type RelayConfigInput = z.input<typeof configSchema>;

export const CONFIG_KEYS = Object.keys(FIELDS) as Key[];

/** Environment variable of a key: WZP_ + upper snake. */
export function envName(key: string): string {
  return `WZP_${key.toUpperCase()}`;
}

/** Env variables that are not config keys but are allowed. */
const ENV_ALLOWED = new Set([
  'WZP_CONFIG',
  // The native add-on: skip its build at install / do not load it (docs/operator.md).
  'WZP_SKIP_NATIVE',
  'WZP_NATIVE_DISABLE',
  // Diagnostic: the add-on sends, dgram receives (bench:forwarding's send-only variant).
  'WZP_NATIVE_RECV_DISABLE',
  // Diagnostic: the add-on sends on the media socket itself (bench:forwarding's wzp-native-onesock).
  'WZP_NATIVE_SEND_SOCKET',
]);

export const DEFAULT_CONFIG: Readonly<RelayConfig> = Object.freeze(configSchema.parse({}));

export interface LoadOptions {
  /** TOML file path (also WZP_CONFIG). */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags (highest precedence). */
  overrides?: Partial<RelayConfigInput>;
}

/** Loads and validates the configuration. @throws {WzpError} CONFIG_INVALID / CONFIG_UNREADABLE */
export function loadConfig(options: LoadOptions = {}): RelayConfig {
  const env = options.env ?? {};
  const file = options.file ?? env.WZP_CONFIG;
  const fromFile = file !== undefined ? readConfigFile(file) : {};
  const fromEnv = parseEnv(env);
  const merged = { ...fromFile, ...fromEnv, ...stripUndefined(options.overrides ?? {}) };
  return validate(merged, 'configuration');
}

/** Parses TOML text (named `source` in errors). */
export function parseConfigToml(text: string, source: string): Record<string, unknown> {
  let data: Record<string, unknown>;
  try {
    data = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new WzpError('CONFIG_UNREADABLE', `${source}: ${(err as Error).message.split('\n')[0]}`);
  }
  for (const key of Object.keys(data)) {
    if (!(CONFIG_KEYS as string[]).includes(key)) {
      throw new WzpError(
        'CONFIG_INVALID',
        `${source}: unknown key "${key}"${suggest(key, CONFIG_KEYS)}`,
      );
    }
  }
  validate({ ...data }, source);
  return data;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new WzpError(
      'CONFIG_UNREADABLE',
      `cannot read config file ${path}: ${(err as Error).message}`,
    );
  }
  return parseConfigToml(text, `config file ${path}`);
}

function parseEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const byEnv = new Map(CONFIG_KEYS.map((k) => [envName(k), k]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('WZP_') || raw === undefined || ENV_ALLOWED.has(name)) {
      continue;
    }
    const key = byEnv.get(name);
    if (key === undefined) {
      throw new WzpError(
        'CONFIG_INVALID',
        `environment: unknown variable ${name}${suggest(name, [...byEnv.keys(), ...ENV_ALLOWED])}`,
      );
    }
    out[key] = coerce(raw, FIELDS[key][0]);
  }
  return out;
}

function coerce(raw: string, schema: z.ZodType): unknown {
  const kind = innerType(schema);
  if (kind === 'array') {
    // JSON (for [[peers]]) or a comma-separated list of strings.
    if (raw.trim().startsWith('[')) {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return raw;
      }
    }
    return raw
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
  }
  if (kind === 'number') {
    const n = Number(raw);
    return raw.trim() === '' || Number.isNaN(n) ? raw : n;
  }
  if (kind === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(raw)) {
      return true;
    }
    if (/^(0|false|no|off)$/i.test(raw)) {
      return false;
    }
  }
  return raw;
}

function innerType(schema: z.ZodType): string {
  let s: z.ZodType = schema;
  for (let i = 0; i < 5; i++) {
    const def = (s as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
    if (def.innerType !== undefined && (def.type === 'default' || def.type === 'optional')) {
      s = def.innerType;
      continue;
    }
    return def.type;
  }
  return 'unknown';
}

function validate(data: Record<string, unknown>, source: string): RelayConfig {
  const result = configSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '?';
      throw new WzpError(
        'CONFIG_INVALID',
        `${source}: unknown key "${key}"${suggest(key, CONFIG_KEYS)}`,
      );
    }
    const key = issue?.path.join('.') ?? '?';
    throw new WzpError('CONFIG_INVALID', `${source}: ${key}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function suggest(word: string, candidates: readonly string[]): string {
  let best = '';
  let bestDist = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return bestDist <= 3 ? ` (did you mean "${best}"?)` : '';
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min(
        (prev[j] as number) + 1,
        (prev[j - 1] as number) + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}

/** Markdown table of every key (docs/operator.md). */
export function renderConfigDocs(): string {
  const rows = CONFIG_KEYS.map((k) => {
    const [, description] = FIELDS[k];
    const def = (DEFAULT_CONFIG as Record<string, unknown>)[k];
    const shown = def === undefined ? '(unset)' : `\`${JSON.stringify(def)}\``;
    return `| \`${k}\` | \`${envName(k)}\` | ${shown} | ${description} |`;
  });
  return [
    '| key (TOML) | environment | default | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
