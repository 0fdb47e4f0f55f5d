import { describe, expect, it } from 'vitest';
import type { FederatedParticipant } from '../signal/index.js';
import { Identity } from '../signal/index.js';
import { PeerDirectory, relayId, signAccept, signDial, verifyAccept, verifyDial } from './peers.js';
import { acceptAnnouncement, announcementFor, knownRemote, MAX_PATH } from './presence.js';
import { REPLAY_RESYNC_AFTER, REPLAY_WINDOW, ReplayWindow } from './replay-window.js';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';
const D = 'dddddddddddddddd';

function p(tag: number, path: string[]): FederatedParticipant {
  return {
    fingerprint: `fp-${path[0]}-${tag}`,
    alias: null,
    relay_label: path[0] ?? null,
    tag,
    path,
  };
}

describe('replay window', () => {
  it('accepts each sequence number once, in any order inside the window', () => {
    const w = new ReplayWindow();
    expect(w.check(10)).toBe('new');
    expect(w.check(10)).toBe('duplicate');
    expect(w.check(8)).toBe('new');
    expect(w.check(12)).toBe('new');
    expect(w.check(8)).toBe('duplicate');
    expect(w.check(11)).toBe('new');
    expect(w.check(9)).toBe('new');
    expect(w.check(9)).toBe('duplicate');
  });

  it('rejects what fell out of the window and survives large jumps', () => {
    const w = new ReplayWindow();
    w.check(5000);
    expect(w.check(5000 - REPLAY_WINDOW)).toBe('too_old');
    expect(w.check(5000 - REPLAY_WINDOW + 1)).toBe('new');
    expect(w.check(5000 + 100_000)).toBe('new');
    expect(w.check(5000)).toBe('too_old');
  });

  it('restarts after a run of too-old packets (a sender that reset its counter)', () => {
    const w = new ReplayWindow();
    w.check(100_000);
    let dropped = 0;
    for (let seq = 1; seq <= 100; seq++) {
      if (w.check(seq) !== 'new') {
        dropped++;
      }
    }
    expect(dropped).toBe(REPLAY_RESYNC_AFTER);
    expect(w.check(60)).toBe('duplicate');
  });

  it('wraps at 2^32', () => {
    const w = new ReplayWindow();
    expect(w.check(0xffffffff)).toBe('new');
    expect(w.check(0)).toBe('new');
    expect(w.check(1)).toBe('new');
    expect(w.check(0xffffffff)).toBe('duplicate');
    expect(w.check(0xfffffffe)).toBe('new');
  });

  it('matches a set-based model on random sequences', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const w = new ReplayWindow();
    const seen = new Set<number>();
    let highest = -1;
    for (let i = 0; i < 20_000; i++) {
      const seq = Math.max(0, (highest < 0 ? 1000 : highest) + rand(300) - 200);
      const verdict = w.check(seq);
      let expected: string;
      if (highest >= 0 && highest - seq >= REPLAY_WINDOW) {
        expected = 'too_old';
      } else if (seen.has(seq)) {
        expected = 'duplicate';
      } else {
        expected = 'new';
        seen.add(seq);
      }
      if (seq > highest) {
        highest = seq;
      }
      expect(verdict).toBe(expected);
    }
  });
});

describe('presence (path vector)', () => {
  it('announces local participants and what other links taught, never back along the path', () => {
    const fromC = [p(1, [C])];
    const fromA = [p(4, [A])];
    // B's view: local tag 2; A and C are neighbours.
    const toA = announcementFor(B, 'B', A, [{ fingerprint: 'x', alias: null, tag: 2 }], [fromC]);
    expect(toA.map((e) => e.path)).toEqual([[B], [C, B]]);
    const toC = announcementFor(B, 'B', C, [], [fromA]);
    expect(toC.map((e) => e.path)).toEqual([[A, B]]);
    // An entry whose path holds the peer is not announced to it.
    expect(announcementFor(B, 'B', A, [], [[p(4, [A, C])]])).toEqual([]);
  });

  it('picks the shortest path and ignores loops', () => {
    const known = knownRemote(A, [[p(1, [C, B])], [p(1, [C])], [p(2, [A, B])]]);
    expect([...known.keys()]).toEqual([`${C}:1`]);
    expect(known.get(`${C}:1`)?.path).toEqual([C]);
  });

  it('filters announcements that cannot be right', () => {
    const got = acceptAnnouncement(A, B, [
      p(1, [B]),
      p(2, [C, B]),
      p(3, [C]), // last hop is not the sender
      p(4, [A, B]), // holds us
      p(5, [C, D, C, B]), // repeats a relay
      p(
        6,
        Array.from({ length: MAX_PATH + 1 }, (_, i) => i.toString(16).padStart(16, '0')).concat(),
      ),
    ]);
    expect(got.map((e) => e.tag)).toEqual([1, 2]);
  });

  it('converges without stale entries when the origin disappears from a triangle', () => {
    // A had participant 1; B and C both learned it (directly and via each other).
    const bFromC = announcementFor(C, 'C', B, [], [[p(1, [A])]]);
    const cFromB = announcementFor(B, 'B', C, [], [[p(1, [A])]]);
    expect(bFromC[0]?.path).toEqual([A, C]);
    // A dies: B's only source is C, whose new list (without its A link) is empty.
    const cAfter = announcementFor(C, 'C', B, [], [acceptAnnouncement(C, B, cFromB)]);
    // C's list to B may not contain what passed through B…
    expect(cAfter).toEqual([]);
    // …and B's list to C never contains what it learned from C.
    expect(announcementFor(B, 'B', C, [], [acceptAnnouncement(B, C, bFromC)])).toEqual([]);
  });
});

describe('peers and the link handshake transcript', () => {
  const dialer = Identity.generate();
  const acceptor = Identity.generate();
  const nd = Buffer.alloc(32, 1);
  const na = Buffer.alloc(32, 2);

  it('signatures bind both nonces and both keys', () => {
    const acc = signAccept(acceptor, nd, na, dialer.publicKey);
    expect(verifyAccept(acc, nd, na, dialer.publicKey, acceptor.publicKey)).toBe(true);
    expect(verifyAccept(acc, na, nd, dialer.publicKey, acceptor.publicKey)).toBe(false);
    expect(verifyAccept(acc, nd, na, Identity.generate().publicKey, acceptor.publicKey)).toBe(
      false,
    );
    const dial = signDial(dialer, na, nd, acceptor.publicKey);
    expect(verifyDial(dial, na, nd, dialer.publicKey, acceptor.publicKey)).toBe(true);
    // An accept signature is not a dial signature (distinct contexts).
    expect(verifyDial(acc, na, nd, dialer.publicKey, acceptor.publicKey)).toBe(false);
  });

  it('finds configured peers by key or fingerprint', () => {
    const other = Identity.generate();
    const dir = new PeerDirectory([
      { label: 'k', public_key: dialer.publicKey.toString('hex') },
      { label: 'f', fingerprint: acceptor.fingerprint, url: 'ws://127.0.0.1:1/v2/federation' },
    ]);
    expect(dir.byKey(dialer.publicKey)?.label).toBe('k');
    expect(dir.byKey(acceptor.publicKey)?.label).toBe('f');
    expect(dir.byKey(other.publicKey)).toBeUndefined();
    expect(relayId(Buffer.alloc(32))).toMatch(/^[0-9a-f]{16}$/);
  });
});
