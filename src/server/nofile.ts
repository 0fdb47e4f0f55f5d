/**
 * The process's open-file limit (RLIMIT_NOFILE), read from /proc.
 *
 * Node raises the soft limit to the hard limit itself at startup (node.cc,
 * PlatformInit, on every POSIX platform), so the relay reads what it got
 * and sizes its connection capacity from it; raising the hard limit needs
 * privileges (`ulimit -Hn`, systemd `LimitNOFILE=`, `docker run --ulimit`).
 */
import { readFileSync } from 'node:fs';

export interface FileLimit {
  soft: number;
  hard: number;
}

/** Parses the "Max open files" line of /proc/<pid>/limits text; null when absent. */
export function parseNofile(limitsText: string): FileLimit | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  if (line === undefined) {
    return null;
  }
  const [soft, hard] = line
    .slice('Max open files'.length)
    .trim()
    .split(/\s+/)
    .map((v) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v)));
  if (soft === undefined || hard === undefined || Number.isNaN(soft) || Number.isNaN(hard)) {
    return null;
  }
  return { soft, hard };
}

/** This process's open-file limit, or null where /proc is not available. */
export function openFileLimit(): FileLimit | null {
  try {
    return parseNofile(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/** File descriptors kept free for everything but client connections (sockets, files, logs). */
export const NOFILE_RESERVE = 64;

/**
 * Concurrent signalling connections the relay accepts: the soft limit minus
 * the reserve (65 536 when the limit cannot be read), or `configured` when
 * set (non-zero) and smaller.
 */
export function connectionCapacity(configured: number, limit: FileLimit | null): number {
  const fromLimit =
    limit === null || !Number.isFinite(limit.soft)
      ? 65_536
      : Math.max(16, limit.soft - NOFILE_RESERVE);
  return configured > 0 ? Math.min(configured, fromLimit) : fromLimit;
}
