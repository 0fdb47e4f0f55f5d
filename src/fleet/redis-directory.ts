/**
 * The directory on Redis (ioredis). Keys, under a prefix (default `wzp:fleet:`):
 *
 * | key | type | TTL | holds |
 * | --- | --- | --- | --- |
 * | `relays` | set | — | ids of relays that registered |
 * | `relay:<id>` | string | `fleet_ttl_ms` | signed relay entry |
 * | `room:<name>` | string | `fleet_ttl_ms` | signed room claim |
 * | `epoch:<name>` | string | 24 h | the room's epoch counter (INCR) |
 * | `presence:<user>` | string | `fleet_ttl_ms` | signed presence record (hub) |
 *
 * A new claim is `SET room:<name> <claim> NX PX <ttl>` after `INCR
 * epoch:<name>`; the home refreshes it, and a relay takes over a dead home's
 * room, through one compare-and-set Lua script that also refuses an epoch
 * below the counter, so an owner that was frozen and missed a re-home is
 * fenced out. Commands fail fast while Redis is unreachable (no offline
 * queue, a command timeout): callers decide what to do, nothing waits.
 */
import { Redis } from 'ioredis';
import { WzpError } from '../errors/index.js';
import { type CasResult, type Directory, EPOCH_TTL_MS } from './directory.js';

/** Most relay ids read per poll (a hostile writer could list millions). */
const MAX_RELAYS = 1024;

const CAS_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
local maxe = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local e = tonumber(ARGV[3])
local same
if ARGV[1] == '' then same = (cur == false) else same = (cur == ARGV[1]) end
if (not same) or e < maxe then
  return {0, cur or '', tostring(maxe)}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
if e > maxe then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {1}
`;

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

type FleetRedis = Redis & {
  fleetCas(
    claimKey: string,
    epochKey: string,
    expect: string,
    raw: string,
    epoch: string,
    ttl: string,
    epochTtl: string,
  ): Promise<[number, string?, string?]>;
  fleetRelease(claimKey: string, expect: string): Promise<number>;
};

/** Presence records written per MULTI (a relay with many registered users writes in chunks). */
const PRESENCE_CHUNK = 500;

export interface RedisDirectoryOptions {
  url: string;
  prefix?: string;
  /** Per-command timeout (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Called when the connection goes up or down. */
  onState?: (connected: boolean, error: string | null) => void;
}

export class RedisDirectory implements Directory {
  readonly kind = 'redis' as const;
  private readonly redis: FleetRedis;
  private readonly prefix: string;
  private up = false;
  private closed = false;

  constructor(options: RedisDirectoryOptions) {
    this.prefix = options.prefix ?? 'wzp:fleet:';
    let lastError: string | null = null;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      enableAutoPipelining: true,
      // Reconnect forever, at most once a second.
      retryStrategy: (times: number) => Math.min(100 * times, 1000),
    }) as FleetRedis;
    this.redis.defineCommand('fleetCas', { numberOfKeys: 2, lua: CAS_SCRIPT });
    this.redis.defineCommand('fleetRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    this.redis.on('ready', () => {
      this.up = true;
      lastError = null;
      options.onState?.(true, null);
    });
    this.redis.on('error', (err: Error) => {
      lastError = err.message;
    });
    this.redis.on('close', () => {
      if (this.up) {
        this.up = false;
        options.onState?.(false, lastError);
      }
    });
  }

  get connected(): boolean {
    return this.up;
  }

  /** Starts connecting; resolves when connected or after the first failure (it keeps retrying). */
  async connect(): Promise<void> {
    try {
      await this.redis.connect();
    } catch {
      // Reconnects in the background; `connected` tells the state.
    }
  }

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) {
      throw new WzpError('FLEET_DIRECTORY_UNAVAILABLE', 'directory closed');
    }
    try {
      return await op();
    } catch (err) {
      throw new WzpError(
        'FLEET_DIRECTORY_UNAVAILABLE',
        `redis ${what}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  register(id: string, raw: string, ttlMs: number): Promise<void> {
    return this.run('register', async () => {
      await this.redis
        .multi()
        .set(`${this.prefix}relay:${id}`, raw, 'PX', ttlMs)
        .sadd(`${this.prefix}relays`, id)
        .exec();
    });
  }

  deregister(id: string): Promise<void> {
    return this.run('deregister', async () => {
      await this.redis
        .multi()
        .del(`${this.prefix}relay:${id}`)
        .srem(`${this.prefix}relays`, id)
        .exec();
    });
  }

  relays(): Promise<Map<string, string | null>> {
    return this.run('relays', async () => {
      const ids = (await this.redis.smembers(`${this.prefix}relays`)).slice(0, MAX_RELAYS);
      const out = new Map<string, string | null>();
      if (ids.length === 0) {
        return out;
      }
      const values = await this.redis.mget(ids.map((id) => `${this.prefix}relay:${id}`));
      const gone: string[] = [];
      ids.forEach((id, i) => {
        const v = values[i] ?? null;
        out.set(id, v);
        if (v === null) {
          gone.push(id);
        }
      });
      if (gone.length > 0) {
        // Forget ids whose entry expired long enough to be gone from Redis.
        await this.redis.srem(`${this.prefix}relays`, ...gone);
      }
      return out;
    });
  }

  getClaim(room: string): Promise<string | null> {
    return this.run('get claim', () => this.redis.get(`${this.prefix}room:${room}`));
  }

  nextEpoch(room: string): Promise<number> {
    return this.run('incr epoch', async () => {
      const key = `${this.prefix}epoch:${room}`;
      const [[, n]] = (await this.redis.multi().incr(key).pexpire(key, EPOCH_TTL_MS).exec()) as [
        [Error | null, number],
      ];
      return n;
    });
  }

  claim(room: string, raw: string, _epoch: number, ttlMs: number): Promise<boolean> {
    return this.run('claim', async () => {
      const ok = await this.redis.set(`${this.prefix}room:${room}`, raw, 'PX', ttlMs, 'NX');
      return ok === 'OK';
    });
  }

  cas(
    room: string,
    expect: string | null,
    raw: string,
    epoch: number,
    ttlMs: number,
  ): Promise<CasResult> {
    return this.run('compare-and-set', async () => {
      const r = await this.redis.fleetCas(
        `${this.prefix}room:${room}`,
        `${this.prefix}epoch:${room}`,
        expect ?? '',
        raw,
        String(epoch),
        String(ttlMs),
        String(EPOCH_TTL_MS),
      );
      if (r[0] === 1) {
        return { ok: true };
      }
      const current = r[1] === undefined || r[1] === '' ? null : r[1];
      return { ok: false, current, maxEpoch: Number(r[2] ?? 0) };
    });
  }

  release(room: string, expect: string): Promise<boolean> {
    return this.run('release', async () => {
      return (await this.redis.fleetRelease(`${this.prefix}room:${room}`, expect)) === 1;
    });
  }

  setPresence(records: readonly (readonly [string, string])[], ttlMs: number): Promise<void> {
    return this.run('set presence', async () => {
      for (let i = 0; i < records.length; i += PRESENCE_CHUNK) {
        const m = this.redis.multi();
        for (const [user, raw] of records.slice(i, i + PRESENCE_CHUNK)) {
          m.set(`${this.prefix}presence:${user}`, raw, 'PX', ttlMs);
        }
        await m.exec();
      }
    });
  }

  getPresence(user: string): Promise<string | null> {
    return this.run('get presence', () => this.redis.get(`${this.prefix}presence:${user}`));
  }

  clearPresence(user: string, expect: string): Promise<boolean> {
    // The same compare-and-delete as a room claim's release.
    return this.run('clear presence', async () => {
      return (await this.redis.fleetRelease(`${this.prefix}presence:${user}`, expect)) === 1;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect(false);
  }
}
