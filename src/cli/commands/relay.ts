/**
 * `wzp relay`: runs the relay. Configuration: embedded defaults < TOML file
 * (--config or WZP_CONFIG) < WZP_* environment < flags. SIGTERM/SIGINT
 * shut it down gracefully.
 */
import type { Command } from 'commander';
import { loadConfig, type RelayConfigInput } from '../../config/index.js';
import { WzpError } from '../../errors/index.js';
import { createLogger } from '../../log/index.js';
import { Relay } from '../../server/relay.js';
import { type CliIo, EXIT_OK, reportError } from '../io.js';

interface RelayFlags {
  config?: string;
  udpHost?: string;
  udpPort?: string;
  signalHost?: string;
  signalPort?: string;
  httpHost?: string;
  httpPort?: string;
  trunking?: boolean;
  udpIo?: string;
  maxSessions?: string;
  maxParticipants?: string;
  sessionTimeoutMs?: string;
  authSecret?: string;
  relayLabel?: string;
  dataDir?: string;
  logLevel?: string;
  mediaWorkers?: string;
  peer?: string[];
  globalRoom?: string[];
}

function num(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * `--peer label,url,key`: label, the peer's ws(s):// federation URL (or `-`
 * for accept-only), and its public key (64 hex) or fingerprint.
 */
export function parsePeerFlag(spec: string): Record<string, string> {
  const parts = spec.split(',').map((x) => x.trim());
  if (parts.length !== 3 || parts.some((x) => x === '')) {
    throw new WzpError(
      'CONFIG_INVALID',
      `--peer ${JSON.stringify(spec)}: expected "label,url,key" (url may be "-" for accept-only)`,
    );
  }
  const [label, url, key] = parts as [string, string, string];
  return {
    label,
    ...(url === '-' ? {} : { url }),
    ...(key.includes(':') ? { fingerprint: key } : { public_key: key }),
  };
}

export function flagsToOverrides(f: RelayFlags): Partial<RelayConfigInput> {
  const o: Record<string, unknown> = {
    udp_host: f.udpHost,
    udp_port: num(f.udpPort),
    signal_host: f.signalHost,
    signal_port: num(f.signalPort),
    http_host: f.httpHost,
    http_port: num(f.httpPort),
    trunking: f.trunking,
    udp_io: f.udpIo,
    max_sessions: num(f.maxSessions),
    max_participants_per_room: num(f.maxParticipants),
    session_timeout_ms: num(f.sessionTimeoutMs),
    auth_secret: f.authSecret,
    relay_label: f.relayLabel,
    data_dir: f.dataDir,
    log_level: f.logLevel,
    media_workers: num(f.mediaWorkers),
    peers: f.peer?.map(parsePeerFlag),
    global_rooms: f.globalRoom,
  };
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined),
  ) as Partial<RelayConfigInput>;
}

export function registerRelay(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('relay')
    .description('run the SFU relay (defaults: UDP 4433, signalling 4434, HTTP 9090)')
    .option('-c, --config <file>', 'TOML configuration file (also WZP_CONFIG)')
    .option('--udp-host <addr>', 'media UDP bind address')
    .option('--udp-port <port>', 'media UDP port')
    .option('--signal-host <addr>', 'signalling bind address')
    .option('--signal-port <port>', 'signalling WebSocket port')
    .option('--http-host <addr>', 'metrics/health bind address')
    .option('--http-port <port>', 'metrics/health port')
    .option('--trunking', 'batch forwarded frames per receiver')
    .option('--udp-io <path>', 'media send path: auto|dgram|native (native = sendmmsg add-on)')
    .option('--max-sessions <n>', 'most sessions across all rooms')
    .option('--max-participants <n>', 'most participants per room')
    .option('--session-timeout-ms <ms>', 'end a session after this long without datagrams')
    .option('--auth-secret <secret>', 'require HS256 access tokens signed with this secret')
    .option('--relay-label <label>', 'human label of this relay')
    .option('--data-dir <dir>', 'directory of the relay identity')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--media-workers <n>', 'media worker threads (0 = one per core)')
    .option(
      '--peer <label,url,key>',
      'federation peer (repeatable): label, ws://host:port/v2/federation or "-", public key or fingerprint',
      collect,
    )
    .option('--global-room <name>', 'room bridged with federation peers (repeatable)', collect)
    .action(async (flags: RelayFlags) => {
      let relay: Relay;
      try {
        const config = loadConfig({
          file: flags.config,
          env: process.env,
          overrides: flagsToOverrides(flags),
        });
        relay = new Relay({ config, logger: createLogger({ level: config.log_level }) });
        await relay.start();
      } catch (err) {
        setExit(reportError(io, err));
        return;
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) {
            return;
          }
          stopping = true;
          relay.log.info({ signal }, 'shutdown requested');
          void relay.stop().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      setExit(EXIT_OK);
    });
}
