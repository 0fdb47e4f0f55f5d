/**
 * Composition of the fleet (src/fleet) into the relay: which directory to
 * use, the URLs this relay advertises, its metrics, and what a placement
 * means for a joining client (served here, redirected, or bridged).
 */
import type { RelayConfig } from '../config/index.js';
import {
  type Directory,
  Fleet,
  type FleetHooks,
  FleetTrust,
  MemoryDirectory,
  RedisDirectory,
} from '../fleet/index.js';
import type { Logger } from '../log/index.js';
import type { CounterBridge, RelayMetrics } from '../metrics/index.js';
import type { Identity } from '../signal/index.js';

export interface AdvertisedUrls {
  signalUrl: string;
  federationUrl: string;
  mediaUrl: string;
  httpUrl: string;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '']);

function hostPart(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The URLs other relays and redirected clients use to reach this relay. */
export function advertisedUrls(
  config: RelayConfig,
  ports: { signalPort: number; httpPort: number },
  udpPort: number,
): AdvertisedUrls {
  const host = hostPart(
    config.advertised_host ??
      (WILDCARDS.has(config.signal_host) ? '127.0.0.1' : config.signal_host),
  );
  const signalUrl = config.advertised_signal_url ?? `ws://${host}:${ports.signalPort}/v2/signal`;
  const base = signalUrl.replace(/\/v2\/signal\/?$/, '').replace(/\/$/, '');
  const httpHost = hostPart(
    config.advertised_host ?? (WILDCARDS.has(config.http_host) ? '127.0.0.1' : config.http_host),
  );
  return {
    signalUrl,
    federationUrl: `${base}/v2/federation`,
    mediaUrl: `udp://${host}:${udpPort}`,
    httpUrl: `http://${httpHost}:${ports.httpPort}`,
  };
}

/** The directory URL without its password (logs, /v2/fleet). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') {
      u.password = '***';
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

export function createDirectory(config: RelayConfig, log: Logger): Directory {
  const url = config.directory_url;
  if (url === undefined || url === 'memory:') {
    return new MemoryDirectory();
  }
  const printable = redactUrl(url);
  return new RedisDirectory({
    url,
    commandTimeoutMs: Math.max(200, Math.min(1000, Math.floor(config.fleet_refresh_ms / 2))),
    onState: (up, error) =>
      up
        ? log.info({ directory: printable }, 'fleet directory connected')
        : log.warn({ directory: printable, err: error }, 'fleet directory connection lost'),
  });
}

export function createFleet(options: {
  config: RelayConfig;
  identity: Identity;
  log: Logger;
  hooks: FleetHooks;
  metrics: RelayMetrics;
}): { fleet: Fleet; directory: Directory } {
  const { config, identity, log, hooks, metrics } = options;
  const directory = createDirectory(config, log);
  const trust = new FleetTrust({
    identity,
    fleetKey: config.fleet_key === undefined ? null : Buffer.from(config.fleet_key, 'hex'),
    peers: config.peers,
    ttlMs: config.fleet_ttl_ms,
  });
  const fleet = new Fleet({
    directory,
    trust,
    log,
    hooks: {
      ...hooks,
      latency: (op, seconds, ok) => {
        metrics.fleetLatency.labels(op).observe(seconds);
        if (!ok) {
          metrics.fleetErrors.labels(op).inc();
        }
      },
    },
    mode: config.fleet_mode,
    onDown: config.fleet_on_directory_down,
    refreshMs: config.fleet_refresh_ms,
    ttlMs: config.fleet_ttl_ms,
    directoryUrl: config.directory_url === undefined ? 'memory:' : redactUrl(config.directory_url),
  });
  if (directory.kind === 'redis' && trust.mode === 'peers' && config.peers.length === 0) {
    log.warn(
      'fleet directory without fleet_key or [[peers]]: entries of other relays cannot be trusted and are ignored',
    );
  }
  return { fleet, directory };
}

/** Copies the fleet's counts into the metrics (at scrape time). */
export class FleetMetricsSync {
  private readonly rejected = new Map<string, number>();

  constructor(
    private readonly fleet: Fleet,
    private readonly m: RelayMetrics,
    private readonly bridge: CounterBridge,
  ) {}

  sync(): void {
    const { fleet, m, bridge } = this;
    const s = fleet.stats;
    m.fleetUp.set(fleet.directoryUp ? 1 : 0);
    m.fleetRelays.set(fleet.relays().length);
    m.fleetHomed.set(fleet.homedCount);
    m.fleetBridged.set(fleet.bridgedCount);
    bridge.set(m.fleetRedirects, s.redirects);
    bridge.set(m.fleetBridges, s.bridges);
    bridge.set(m.fleetRehomes, s.rehomes);
    bridge.set(m.fleetFenced, s.fenced);
    bridge.set(m.fleetRefused, s.refused);
    // Labelled children are new objects on every labels() call: track deltas here.
    for (const [why, n] of Object.entries(s.rejected)) {
      const prev = this.rejected.get(why) ?? 0;
      m.fleetRejected.labels(why).inc(n - prev);
      this.rejected.set(why, n);
    }
  }
}
