import { closeSync, openSync, readSync } from 'node:fs';

/** CPU time in microseconds, as `process.cpuUsage` reports it. */
export interface CpuTime {
  user: number;
  system: number;
}

/** Which clock {@link threadCpuUsage} reads on this Node and platform. */
export type ThreadCpuSource = 'threadCpuUsage' | 'proc' | 'process';

type CpuUsageFn = (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage;

const USER_HZ = 100; // clock ticks per second on every Linux ABI Node supports
const US_PER_TICK = 1e6 / USER_HZ;

const native = (process as unknown as { threadCpuUsage?: CpuUsageFn }).threadCpuUsage?.bind(
  process,
);

// One descriptor per thread: this module is loaded once per worker thread, and
// /proc/thread-self resolves to the thread that opened it.
let procFd = -1;
const procBuf = Buffer.allocUnsafe(1024);
// The last good reading: a failed read after a good one repeats it (a zero
// difference) instead of mixing in another clock.
const procLast: CpuTime = { user: 0, system: 0 };

/** Reads a /proc file from its start into `buf`: bytes read, or -1 with `fd` closed. */
function readWhole(fd: number, buf: Buffer): number {
  try {
    return readSync(fd, buf, 0, buf.length, 0);
  } catch {
    closeSync(fd);
    return -1;
  }
}

function readProc(out: CpuTime): boolean {
  if (procFd < 0) {
    return false;
  }
  const n = readWhole(procFd, procBuf);
  if (n < 0) {
    procFd = -1;
    return false;
  }
  // "pid (comm) state ppid ...": the command may hold spaces and parentheses,
  // so fields are counted from the last ')'. utime is field 14, stime 15.
  let i = procBuf.lastIndexOf(0x29, n - 1);
  if (i < 0) {
    return false;
  }
  let field = 2;
  let utime = 0;
  let stime = 0;
  let value = 0;
  for (i += 1; i < n; i += 1) {
    const c = procBuf[i] as number;
    if (c === 0x20 || c === 0x0a) {
      if (field === 14) {
        utime = value;
      } else if (field === 15) {
        stime = value;
        break;
      }
      field += 1;
      value = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
    }
  }
  if (field !== 15) {
    return false;
  }
  out.user = utime * US_PER_TICK;
  out.system = stime * US_PER_TICK;
  procLast.user = out.user;
  procLast.system = out.system;
  return true;
}

function openProc(): boolean {
  if (native !== undefined || process.platform !== 'linux') {
    return false;
  }
  try {
    procFd = openSync('/proc/thread-self/stat', 'r');
  } catch {
    procFd = -1;
    return false;
  }
  return readProc({ user: 0, system: 0 });
}

const source: ThreadCpuSource =
  native !== undefined ? 'threadCpuUsage' : openProc() ? 'proc' : 'process';

/** The clock this thread's {@link threadCpuUsage} reads. */
export function threadCpuSource(): ThreadCpuSource {
  return source;
}

/**
 * CPU time of the calling thread, or its difference from `previous`:
 * - `process.threadCpuUsage` where Node has it (≥ 23.9 / 22.19), microsecond
 *   resolution;
 * - else `/proc/thread-self/stat` on Linux, in clock ticks of 10 ms (a window
 *   that holds n ticks lasted more than (n - 1) × 10 ms, so a reading above
 *   20 ms still means more than 20 ms spent);
 * - else the whole process's (`process.cpuUsage`), other threads included.
 */
export function threadCpuUsage(previous?: CpuTime): CpuTime {
  let now: CpuTime;
  if (native !== undefined) {
    now = native();
  } else {
    now = { user: 0, system: 0 };
    if (source === 'process') {
      now = process.cpuUsage();
    } else if (!readProc(now)) {
      now.user = procLast.user;
      now.system = procLast.system;
    }
  }
  if (previous !== undefined) {
    now.user -= previous.user;
    now.system -= previous.system;
  }
  return now;
}

/** Context switches of a thread since it started. */
export interface ContextSwitches {
  voluntary: number;
  involuntary: number;
}

const VOLUNTARY = Buffer.from('voluntary_ctxt_switches:');
const INVOLUNTARY = Buffer.from('nonvoluntary_ctxt_switches:');

/** The number after `key` in `buf[0, n)` (a /proc status line), or -1. */
function statusField(buf: Buffer, n: number, key: Buffer): number {
  let i = buf.indexOf(key);
  // "voluntary_..." is also the tail of "nonvoluntary_...": take a line start.
  while (i > 0 && buf[i - 1] !== 0x0a) {
    i = buf.indexOf(key, i + 1);
  }
  if (i < 0 || i >= n) {
    return -1;
  }
  let value = 0;
  let digits = 0;
  for (i += key.length; i < n; i += 1) {
    const c = buf[i] as number;
    if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      digits += 1;
    } else if (digits > 0 || c === 0x0a) {
      break;
    }
  }
  return digits > 0 ? value : -1;
}

/**
 * A reader of the calling thread's context switches (`/proc/thread-self/status`
 * on Linux), or null where there is none. The descriptor is opened once, by
 * the thread that calls this: /proc/thread-self resolves to its opener.
 * A failed read returns the last good counts.
 */
export function threadContextSwitches(): (() => ContextSwitches) | null {
  if (process.platform !== 'linux') {
    return null;
  }
  let fd: number;
  try {
    fd = openSync('/proc/thread-self/status', 'r');
  } catch {
    return null;
  }
  const buf = Buffer.allocUnsafe(4096);
  const last: ContextSwitches = { voluntary: 0, involuntary: 0 };
  const read = (): ContextSwitches => {
    if (fd < 0) {
      return last;
    }
    const n = readWhole(fd, buf);
    if (n < 0) {
      fd = -1;
      return last;
    }
    const v = statusField(buf, n, VOLUNTARY);
    const iv = statusField(buf, n, INVOLUNTARY);
    if (v >= 0 && iv >= 0) {
      last.voluntary = v;
      last.involuntary = iv;
    }
    return last;
  };
  read();
  return fd >= 0 ? read : null;
}
