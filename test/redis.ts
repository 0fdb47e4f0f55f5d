/**
 * A real redis-server for tests: started on a free loopback port without
 * persistence (`--save '' --appendonly no`), stopped and restarted on the
 * same port at will. Tests skip with a clear reason when the binary is
 * missing (`.ci/run` installs the Debian package).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort } from './cluster.js';

function findRedis(): string | null {
  try {
    return (
      execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null
    );
  } catch {
    return null;
  }
}

export const REDIS_BIN = findRedis();
export const NO_REDIS_REASON =
  'redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)';

export class TestRedis {
  proc: ChildProcess | null = null;
  output: string[] = [];
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const r = new TestRedis(await freePort());
    await r.startProcess();
    return r;
  }

  async startProcess(): Promise<void> {
    if (REDIS_BIN === null) {
      throw new Error(NO_REDIS_REASON);
    }
    const proc = spawn(
      REDIS_BIN,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    proc.stdout?.on('data', (d: Buffer) => this.output.push(String(d)));
    proc.stderr?.on('data', (d: Buffer) => this.output.push(String(d)));
    const end = Date.now() + 10_000;
    while (!(await this.ping())) {
      if (proc.exitCode !== null || Date.now() > end) {
        throw new Error(`redis-server did not start: ${this.output.join('')}`);
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** True when the server answers PING. */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port: this.port });
      const done = (ok: boolean): void => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(500, () => done(false));
      s.once('error', () => done(false));
      s.once('connect', () => s.write('PING\r\n'));
      s.once('data', (d) => done(String(d).startsWith('+PONG')));
    });
  }

  /** Stops the server (SIGKILL when `hard`); its data is gone (no persistence). */
  async stop(hard = false): Promise<void> {
    const proc = this.proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) {
      return;
    }
    const exited = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    this.proc = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }
}
