/**
 * Participants of a room in the federation and fleet tests: a client with
 * what it received, and the two checks those tests repeat (room size,
 * exactly-once exchange).
 */
import { expect } from 'vitest';
import type { ReceivedMedia, WzpClient } from '../src/client/index.js';
import { createHeader, type MediaHeader } from '../src/wire/index.js';
import { sleep, until } from './helpers.js';

export interface Member {
  /** Prefix of every payload it sends (`name:seq`). */
  name: string;
  client: WzpClient;
  got: ReceivedMedia[];
  /** Last sequence number sent (a real sender never repeats one). */
  seq: number;
}

/** An audio header of a test sender. */
export function audioHeader(seq: number, streamId = 0): MediaHeader {
  return createHeader({ seq, timestamp: seq * 20, streamId, codecId: 2 });
}

/** Waits until every member's latest RoomUpdate lists `n` participants. */
export async function roomSize(members: Member[], n: number, ms = 8000): Promise<void> {
  await until(
    () => members.every((m) => m.client.lastRoomUpdate?.count === n),
    `every member to see ${n} participants (${members.map((m) => m.client.lastRoomUpdate?.count).join(',')})`,
    ms,
  );
}

/**
 * Every member sends `n` packets; every other member gets each exactly once,
 * `n` from each other member under one sender tag, and never its own.
 */
export async function exchange(members: Member[], n: number): Promise<void> {
  for (const m of members) {
    m.got.length = 0;
  }
  for (let i = 1; i <= n; i++) {
    for (const m of members) {
      m.seq++;
      m.client.sendMedia(audioHeader(m.seq), Buffer.from(`${m.name}:${m.seq}`));
    }
    if (i % 10 === 0) {
      await sleep(5);
    }
  }
  const expected = (members.length - 1) * n;
  await until(
    () => members.every((m) => m.got.length >= expected),
    `${expected} packets at every member (${members.map((m) => m.got.length).join(',')})`,
    8000,
  );
  await sleep(300); // anything extra (a duplicate or a loop) would arrive now
  for (const m of members) {
    expect(m.got.length).toBe(expected);
    expect(new Set(m.got.map((g) => g.payload.toString())).size).toBe(expected);
    for (const other of members) {
      if (other === m) {
        continue;
      }
      const fromOther = m.got.filter((g) => g.payload.toString().startsWith(`${other.name}:`));
      expect(fromOther.length).toBe(n);
      // One distinct sender tag per remote participant.
      expect(new Set(fromOther.map((g) => g.senderTag)).size).toBe(1);
    }
    expect(m.got.some((g) => g.payload.toString().startsWith(`${m.name}:`))).toBe(false);
  }
}
