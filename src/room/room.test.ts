import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWzpError } from '../errors/index.js';
import { type Participant, type Room, RoomManager, RwLock, roomUpdateOf } from './index.js';

const yieldNow = () => new Promise<void>((r) => setImmediate(r));

function manager(limits: { maxSessions?: number; maxParticipantsPerRoom?: number } = {}) {
  return new RoomManager<string, { created: number }>({
    maxSessions: limits.maxSessions ?? 1000,
    maxParticipantsPerRoom: limits.maxParticipantsPerRoom ?? 100,
    createState: () => ({ created: Date.now() }),
  });
}

const info = (fp: string) => ({ fingerprint: fp, alias: null });

describe('RwLock', () => {
  it('lets readers run together and writers alone', async () => {
    const lock = new RwLock();
    const log: string[] = [];
    let inside = 0;
    let maxReaders = 0;
    const reader = (n: number) =>
      lock.runRead(async () => {
        inside++;
        maxReaders = Math.max(maxReaders, inside);
        await yieldNow();
        log.push(`r${n}`);
        inside--;
      });
    const writer = (n: number) =>
      lock.runWrite(async () => {
        expect(inside).toBe(0);
        inside += 100;
        await yieldNow();
        log.push(`w${n}`);
        inside -= 100;
      });
    await Promise.all([reader(1), reader(2), writer(1), reader(3), writer(2)]);
    expect(maxReaders).toBe(2);
    // Writer preference: r3 arrived after w1 queued, so it runs after w1.
    expect(log.indexOf('w1')).toBeLessThan(log.indexOf('r3'));
    expect(log.indexOf('r1')).toBeLessThan(log.indexOf('w1'));
  });

  it('releases on exceptions', async () => {
    const lock = new RwLock();
    await expect(lock.runWrite(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(lock.runRead(() => Promise.reject(new Error('boom2')))).rejects.toThrow('boom2');
    await expect(lock.runWrite(() => 7)).resolves.toBe(7);
    expect(lock.activeReaders).toBe(0);
  });
});

describe('RoomManager', () => {
  it('joins and leaves, allocating the lowest free tag and deleting empty rooms', async () => {
    const m = manager();
    const a = await m.join('r', info('a'), ({ id }) => `sink-${id}`);
    const b = await m.join('r', info('b'), ({ id }) => `sink-${id}`);
    expect(a.participant.tag).toBe(1);
    expect(b.participant.tag).toBe(2);
    expect(roomUpdateOf(b.snapshot)).toEqual({
      count: 2,
      participants: [
        { tag: 1, fingerprint: 'a', alias: null, relay_label: null },
        { tag: 2, fingerprint: 'b', alias: null, relay_label: null },
      ],
    });
    const old = a.room.snapshot;
    await m.leave(a.room, a.participant.id);
    expect(old).toHaveLength(2); // published snapshots never change
    expect(Object.isFrozen(old)).toBe(true);
    const c = await m.join('r', info('c'), () => 'sink-c');
    expect(c.participant.tag).toBe(1); // reused
    expect((await m.leave(a.room, a.participant.id)).removed).toBe(false); // idempotent
    await m.leave(b.room, b.participant.id);
    await m.leave(c.room, c.participant.id);
    expect(m.roomCount).toBe(0);
    expect(m.sessionCount).toBe(0);
    expect(a.room.deleted).toBe(true);
  });

  it('enforces room size, session limit, names and draining with typed errors', async () => {
    const m = manager({ maxSessions: 3, maxParticipantsPerRoom: 2 });
    await m.join('r', info('a'), () => 'a');
    await m.join('r', info('b'), () => 'b');
    await expect(m.join('r', info('c'), () => 'c')).rejects.toSatisfy((e) =>
      isWzpError(e, 'ROOM_FULL'),
    );
    await m.join('s', info('c'), () => 'c');
    await expect(m.join('t', info('d'), () => 'd')).rejects.toSatisfy((e) =>
      isWzpError(e, 'SESSION_LIMIT'),
    );
    expect(m.roomCount).toBe(2);
    await expect(m.join('', info('x'), () => 'x')).rejects.toSatisfy((e) =>
      isWzpError(e, 'ROOM_INVALID_NAME'),
    );
    await expect(m.join('a\nb', info('x'), () => 'x')).rejects.toSatisfy((e) =>
      isWzpError(e, 'ROOM_INVALID_NAME'),
    );
    await expect(m.join('x'.repeat(129), info('x'), () => 'x')).rejects.toSatisfy((e) =>
      isWzpError(e, 'ROOM_INVALID_NAME'),
    );
    m.setDraining(true);
    await expect(m.join('s', info('e'), () => 'e')).rejects.toSatisfy((e) =>
      isWzpError(e, 'RELAY_DRAINING'),
    );
  });

  it('stays consistent under concurrent joins and leaves interleaved at await points', async () => {
    const m = manager({ maxSessions: 40, maxParticipantsPerRoom: 1000 });
    const rooms = ['a', 'b', 'c'];
    const members = new Map<number, { room: Room<string, { created: number }>; fp: string }>();
    const versions = new Map<string, number>();
    let rejected = 0;
    const ops: Promise<void>[] = [];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 300; i++) {
      const roomName = rooms[rnd(3)] as string;
      const delay = rnd(4);
      ops.push(
        (async () => {
          for (let d = 0; d < delay; d++) {
            await yieldNow();
          }
          if (rnd(3) === 0 && members.size > 0) {
            const ids = [...members.keys()];
            const id = ids[rnd(ids.length)] as number;
            const entry = members.get(id);
            if (entry !== undefined) {
              members.delete(id);
              const res = await m.leave(entry.room, id);
              expect(res.removed).toBe(true);
              check(res.room.name, res.snapshot, res.room.version);
            }
            return;
          }
          try {
            const res = await m.join(roomName, info(`fp${i}`), ({ id }) => `s${id}`);
            expect(m.sessionCount).toBeLessThanOrEqual(40);
            members.set(res.participant.id, { room: res.room, fp: `fp${i}` });
            check(roomName, res.snapshot, res.room.version);
          } catch (err) {
            expect(isWzpError(err, 'SESSION_LIMIT')).toBe(true);
            rejected++;
          }
        })(),
      );
    }
    function check(name: string, snapshot: readonly Participant<string>[], version: number): void {
      const ids = snapshot.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      const tags = snapshot.map((p) => p.tag);
      expect(new Set(tags).size).toBe(tags.length);
      expect(roomUpdateOf(snapshot).count).toBe(snapshot.length);
      const last = versions.get(name) ?? 0;
      versions.set(name, Math.max(last, version));
    }
    await Promise.all(ops);
    expect(rejected).toBeGreaterThan(0);
    const listed = await m.list();
    const actual = new Map<number, string>();
    for (const { room, participants } of listed) {
      for (const p of participants) {
        actual.set(p.id, `${room.name}/${p.fingerprint}`);
      }
    }
    const expected = new Map([...members].map(([id, e]) => [id, `${e.room.name}/${e.fp}`]));
    expect(actual).toEqual(expected);
    expect(m.sessionCount).toBe(members.size);
  });

  it('model check: any sequence of joins/leaves matches a simple model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 2 }), fc.nat(5)), {
          maxLength: 60,
        }),
        async (steps) => {
          const m = manager({ maxSessions: 10, maxParticipantsPerRoom: 4 });
          const model = new Map<number, string>();
          const handles = new Map<number, Room<string, { created: number }>>();
          await Promise.all(
            steps.map(async ([isJoin, r, pick], i) => {
              for (let k = 0; k < pick % 3; k++) {
                await yieldNow();
              }
              if (isJoin) {
                try {
                  const res = await m.join(`room${r}`, info(`f${i}`), () => 'x');
                  model.set(res.participant.id, `room${r}`);
                  handles.set(res.participant.id, res.room);
                } catch (err) {
                  if (!isWzpError(err, 'ROOM_FULL') && !isWzpError(err, 'SESSION_LIMIT')) {
                    throw err;
                  }
                }
              } else {
                const ids = [...model.keys()];
                const id = ids[pick % Math.max(1, ids.length)];
                if (id !== undefined && model.has(id)) {
                  model.delete(id);
                  await m.leave(handles.get(id) as Room<string, { created: number }>, id);
                }
              }
            }),
          );
          const listed = await m.list();
          const total = listed.reduce((n, x) => n + x.participants.length, 0);
          return (
            total === model.size &&
            m.sessionCount === model.size &&
            listed.every((x) => x.participants.length <= 4)
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
