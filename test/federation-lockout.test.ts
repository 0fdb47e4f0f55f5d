/**
 * Issue 12 item 3: a FederationHello naming a configured peer's (public)
 * key reserves nothing. Relay B, the attacked one, is a `wzp relay` child
 * process; the real peer A (in-process) dials in while ten impostors,
 * concurrent and repeated, send Hellos with A's key on fresh connections:
 * half of them answer the challenge with a signature they cannot make (and
 * are refused at once), half leave their handshake open. A's link comes up
 * in its normal handshake time (B's /v2/peers and metrics tell), and B is
 * held to the targets of every signalling attack: its legitimate 3-person
 * room keeps ≥ 99 % delivery, no signalling or federation frame costs more
 * than 20 ms (its per-frame histograms), its RSS grows by less than 64 MB.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { forgedHelloFrame, type RawPeer } from '../src/conformance/attacks.js';
import { Identity } from '../src/signal/index.js';
import { sleep, startRelay, type TestRelay, until, untilAsync } from './helpers.js';
import { begin, cleanup, end, peer, relay, room } from './hostile.js';
import { type ChildRelay, CLI, metricValue } from './relay-child.js';

let inProcess: TestRelay[] = [];
afterEach(async () => {
  await Promise.all(inProcess.map((r) => r.close()));
  inProcess = [];
  await cleanup();
});

const hex = (id: Identity) => id.publicKey.toString('hex');

interface PeerView {
  label: string;
  status: string;
  direction?: string;
}

async function peerA(b: ChildRelay): Promise<PeerView | undefined> {
  const j = (await b.json('/v2/peers')) as { peers: PeerView[] };
  return j.peers.find((p) => p.label === 'A');
}

/** Relay A (in-process, identity `ia`) dialing B; resolves with the time its link took to come up. */
async function dialA(ia: Identity, b: ChildRelay): Promise<{ a: TestRelay; upMs: number }> {
  const t0 = performance.now();
  const a = await startRelay(
    {
      log_level: 'warn',
      global_rooms: ['g'],
      federation_backoff_initial_ms: 100,
      peers: [{ label: 'B', public_key: b.publicKey, url: b.fedUrl }],
    },
    ia,
  );
  inProcess.push(a);
  await until(() => a.relay.federation?.links.size === 1, 'A linked to B', 5000);
  const upMs = performance.now() - t0;
  await untilAsync(async () => (await peerA(b))?.status === 'up', 'B reports A up', 5000);
  return { a, upMs };
}

/** One impostor round: a fresh connection, a Hello with A's key, and a forged Auth when `forge`. */
async function impostorRound(
  b: ChildRelay,
  ia: Identity,
  localAddress: string,
  seed: string,
  forge: boolean,
): Promise<{ hello: boolean; auth: boolean }> {
  const p: RawPeer = peer(b.fedUrl, { localAddress });
  try {
    await p.open();
  } catch {
    return { hello: false, auth: false };
  }
  p.send(forgedHelloFrame(ia.publicKey, seed));
  if (!forge) {
    return { hello: true, auth: false };
  }
  await until(() => p.received.length > 0 || !p.isOpen, 'challenge', 3000).catch(() => {});
  if (!p.received.some((m) => m.type === 'FederationChallenge')) {
    return { hello: true, auth: false };
  }
  p.signal({ type: 'FederationAuth', body: { version: 1, signature: randomBytes(64) } });
  return { hello: true, auth: true };
}

describe.skipIf(!existsSync(CLI))('federation handshake lock-out (issue 12)', () => {
  it('unproven Hellos naming the real peer never delay its link; relay B holds the targets', {
    timeout: 60_000,
  }, async () => {
    const ia = Identity.generate();
    const b = await relay({
      env: {
        WZP_GLOBAL_ROOMS: 'g',
        WZP_PEERS: JSON.stringify([{ label: 'A', public_key: hex(ia) }]),
      },
    });
    const lr = await room(b, 'legit', '127.0.0.2');
    // Normal handshake time: A links once without an attack, then leaves.
    const baseline = await dialA(ia, b);
    await baseline.a.close();
    inProcess = [];
    await untilAsync(async () => (await peerA(b))?.status === 'down', 'B sees A leave', 5000);
    // One impostor round of each kind before the window (the first frame of a kind pays for
    // V8 compiling its path).
    await impostorRound(b, ia, '127.0.0.9', 'warm-0', true);
    await impostorRound(b, ia, '127.0.0.9', 'warm-1', false);
    await sleep(200);
    const w = await begin(b, lr);
    // Ten impostors, one source address each (under the per-address limit), repeating a Hello
    // on a fresh connection every 50 ms; odd ones forge the Auth, even ones leave it open.
    let stop = false;
    let hellos = 0;
    let forged = 0;
    const impostor = async (i: number): Promise<void> => {
      for (let k = 0; !stop; k++) {
        const r = await impostorRound(b, ia, `127.0.0.${10 + i}`, `imp-${i}-${k}`, i % 2 === 1);
        hellos += r.hello ? 1 : 0;
        forged += r.auth ? 1 : 0;
        await sleep(50);
      }
    };
    const attack = Array.from({ length: 10 }, (_, i) => impostor(i));
    await sleep(300);
    const { upMs } = await dialA(ia, b);
    const m1 = await b.metrics();
    // Keep the attack going for a second past the link, with the room streaming.
    await sleep(1000);
    stop = true;
    await Promise.all(attack);
    const view = await peerA(b);
    const events = (e: string, m: string): number =>
      metricValue(m, 'wzp_federation_link_events_total', `event="${e}"`) -
      metricValue(w.m0, 'wzp_federation_link_events_total', `event="${e}"`);
    const m = await end('federation-lockout', b, lr, w, {
      frames: ['signal', 'federation'],
      extra: {
        baseline_up_ms: Math.round(baseline.upMs),
        up_ms: Math.round(upMs),
        hellos,
        forged_auths: forged,
        refused_bad_challenge_by_link_up: events('refused_bad_challenge', m1),
      },
    });
    expect(hellos).toBeGreaterThan(50);
    expect(forged).toBeGreaterThan(10);
    // Normal handshake time on this machine: well under the 10 s the lock-out used to cost.
    expect(upMs).toBeLessThan(3000);
    expect(view).toMatchObject({ status: 'up', direction: 'inbound' });
    expect(metricValue(m, 'wzp_federation_peer_status', 'peer="A"')).toBe(1);
    // The link came up once (no flapping), and every forged Auth was a counted refusal.
    expect(events('up', m)).toBe(1);
    expect(events('down', m)).toBe(0);
    expect(events('refused_bad_challenge', m)).toBeGreaterThanOrEqual(forged);
    // Every Hello the relay answered was timed: the per-frame target covers them.
    expect(
      metricValue(m, 'wzp_federation_frame_seconds_count') -
        metricValue(w.m0, 'wzp_federation_frame_seconds_count'),
    ).toBeGreaterThanOrEqual(hellos + forged);
  });
});
