/**
 * The direct-call hub (protocol/BINDING.md §9, docs/calls.md): presence of
 * registered identities, call records, and the routing of call signals to
 * the call's other party — on this relay, or across federation links with a
 * loop guard (the path of relay ids) and a hop limit.
 *
 * Media meets on the callee's relay: when the callee accepts, both parties
 * get a `CallSetup` naming the room `call-<id>` and that relay's signalling
 * URL, and that relay admits exactly the two parties to the room.
 *
 * Control plane only: every method runs on the main thread, nothing here is
 * on the media path.
 */
import { CALL_ROOM_PREFIX } from '../auth/token.js';
import type { RelayConfig } from '../config/index.js';
import type { ErrorCode } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { RelayMetrics } from '../metrics/index.js';
import {
  type BodyOf,
  decodeSignal,
  encodeSignal,
  fingerprint,
  type HangupReason,
  type OutgoingSignal,
  verifyCallAnswer,
  verifyCallOffer,
} from '../signal/index.js';
import { TokenBucket } from '../util/token-bucket.js';

/** WebSocket path of the hub on the signalling port. */
export const HUB_PATH = '/v2/hub';
export { CALL_ROOM_PREFIX };

/** Most call routes remembered by a relay in the middle of a path. */
const MAX_TRANSIT = 10_000;
/** A transit route unused for this long is forgotten. */
const TRANSIT_TTL_MS = 3600_000;
/** Largest encoded call signal carried across a link. */
const MAX_INNER_BYTES = 64 * 1024;

/** A registered identity's hub connection, as the hub sees it. */
export interface HubUser {
  readonly fingerprint: string;
  readonly alias: string | null;
  /** Fingerprints this user listed as contacts at registration. */
  readonly contacts: ReadonlySet<string>;
  send(msg: OutgoingSignal): void;
  /** Closes the connection (a newer registration of the same identity took over). */
  replaced(): void;
}

/** Call signals across relays (implemented by the federation). */
export interface CallLinks {
  /** This relay's id (16 hex characters). */
  readonly selfId: string;
  /**
   * Sends on every link except the one to `except` (and, with `configuredOnly`,
   * except links opened from the fleet directory); returns how many links took it.
   */
  broadcastCallSignal(
    body: BodyOf<'CallSignalForward'>,
    except: string | null,
    configuredOnly?: boolean,
  ): number;
  /**
   * Sends on the link to relay `peerId`. A relay the fleet directory vouches
   * for is dialed when there is no link yet (the signal waits, bounded, for
   * it). False when there is no way to reach it.
   */
  sendCallSignal(peerId: string, body: BodyOf<'CallSignalForward'>): boolean;
  /** The hub's calls changed: links kept up for calls may now be idle. */
  callsChanged?(): void;
}

/**
 * Where people are registered across a fleet (implemented with the fleet
 * directory, docs/fleet.md): the hub publishes its users and asks where a
 * callee that is not registered here is.
 */
export interface CallLocator {
  announce(fingerprint: string): void;
  withdraw(fingerprint: string): void;
  /**
   * The relay id a callee is registered on, with a link to it on its way;
   * null when the directory does not know (the offer then floods the links).
   */
  locate(fingerprint: string): Promise<string | null>;
}

/** The federation delivers call signals from its links here. */
export interface CallSignalSink {
  onForwarded(fromPeer: string, body: BodyOf<'CallSignalForward'>): void;
  /** True while a call is routed over the link to relay `peerId` (keep it up). */
  usesPeer(peerId: string): boolean;
}

export type CallOutcome =
  | 'answered'
  | 'rejected'
  | 'cancelled'
  | 'timeout'
  | 'busy'
  | 'unreachable'
  | 'failed';

/** One side of a call: a user registered here, or a relay link it is reached through. */
interface Side {
  user: HubUser | null;
  /** Peer relay id of the link toward this party (null: not learned yet, or local). */
  via: string | null;
}

interface Call {
  readonly id: string;
  readonly room: string;
  readonly caller: string;
  readonly callee: string;
  readonly callerSide: Side;
  readonly calleeSide: Side;
  state: 'routing' | 'ringing' | 'active';
  readonly offer: BodyOf<'DirectCallOffer'>;
  readonly startedMs: number;
  timer: NodeJS.Timeout | null;
  /** Signalling URL of the relay hosting the call room, once answered. */
  host: string | null;
}

interface Transit {
  callerVia: string;
  calleeVia: string | null;
  lastUsedMs: number;
}

export interface HubOptions {
  config: RelayConfig;
  log: Logger;
  metrics: RelayMetrics;
  /** This relay's signalling URL as clients reach it (CallSetup.relay_addr). */
  publicUrl: () => string;
  /** A call ended: the call room's sessions may be closed. */
  onCallEnded?: (room: string) => void;
  now?: () => number;
}

export class Hub implements CallSignalSink {
  private readonly users = new Map<string, HubUser>();
  private readonly calls = new Map<string, Call>();
  private readonly transit = new Map<string, Transit>();
  private readonly offerBuckets = new Map<string, TokenBucket>();
  private readonly config: RelayConfig;
  private readonly log: Logger;
  private readonly metrics: RelayMetrics;
  private readonly now: () => number;
  /** Federation links, when this relay has any. */
  links: CallLinks | null = null;
  /** The fleet directory's presence index, in a fleet with a shared directory. */
  locator: CallLocator | null = null;

  constructor(private readonly o: HubOptions) {
    this.config = o.config;
    this.log = o.log.child({ component: 'hub' });
    this.metrics = o.metrics;
    this.now = o.now ?? (() => performance.now());
  }

  get registeredCount(): number {
    return this.users.size;
  }

  get callCount(): number {
    return this.calls.size;
  }

  isRegistered(fp: string): boolean {
    return this.users.has(fp);
  }

  // ── presence ─────────────────────────────────────────────────────────────

  /** Registers a verified identity; a previous connection of the same identity is replaced. */
  register(user: HubUser): void {
    const old = this.users.get(user.fingerprint);
    if (old !== undefined && old !== user) {
      this.unregister(old);
      old.replaced();
    }
    this.users.set(user.fingerprint, user);
    this.metrics.hubRegistered.set(this.users.size);
    this.locator?.announce(user.fingerprint);
    this.log.debug({ fingerprint: user.fingerprint }, 'registered');
    user.send({ type: 'PresenceList', body: { users: this.visibleTo(user) } });
    this.presenceChanged(user);
  }

  /** The connection of `user` closed: its calls end, its presence goes. */
  unregister(user: HubUser): void {
    if (this.users.get(user.fingerprint) !== user) {
      return;
    }
    for (const call of [...this.calls.values()]) {
      const mine =
        call.callerSide.user === user ? 'caller' : call.calleeSide.user === user ? 'callee' : null;
      if (mine === null) {
        continue;
      }
      const other = mine === 'caller' ? call.calleeSide : call.callerSide;
      const otherFp = mine === 'caller' ? call.callee : call.caller;
      this.deliver(call, other, otherFp, hangup(call.id, 'Normal'));
      this.end(call, call.state === 'active' ? null : mine === 'caller' ? 'cancelled' : 'rejected');
    }
    this.users.delete(user.fingerprint);
    this.locator?.withdraw(user.fingerprint);
    this.offerBuckets.delete(user.fingerprint);
    this.metrics.hubRegistered.set(this.users.size);
    this.presenceChanged(user);
  }

  /** Who `user` may see, under `presence_visibility`. */
  private canSee(viewer: HubUser, other: HubUser): boolean {
    if (viewer === other) {
      return false;
    }
    switch (this.config.presence_visibility) {
      case 'everyone':
        return true;
      case 'nobody':
        return false;
      default:
        return viewer.contacts.has(other.fingerprint) && other.contacts.has(viewer.fingerprint);
    }
  }

  private visibleTo(viewer: HubUser): { fingerprint: string; alias: string | null }[] {
    const out: { fingerprint: string; alias: string | null }[] = [];
    for (const u of this.users.values()) {
      if (this.canSee(viewer, u)) {
        out.push({ fingerprint: u.fingerprint, alias: u.alias });
      }
    }
    return out;
  }

  /** Sends a fresh PresenceList to each user who can see `changed` (and only to them). */
  private presenceChanged(changed: HubUser): void {
    for (const u of this.users.values()) {
      if (u !== changed && this.canSee(u, changed)) {
        u.send({ type: 'PresenceList', body: { users: this.visibleTo(u) } });
      }
    }
  }

  // ── calls from local users ───────────────────────────────────────────────

  /** A DirectCallOffer from a registered local user. Returns a typed refusal or null. */
  offer(user: HubUser, offer: BodyOf<'DirectCallOffer'>): ErrorCode | null {
    if (
      offer.caller_fingerprint !== user.fingerprint ||
      fingerprint(offer.identity_pub) !== user.fingerprint ||
      !verifyCallOffer(offer.identity_pub, offer.ephemeral_pub, offer.signature) ||
      offer.target_fingerprint === user.fingerprint
    ) {
      return this.reject('CALL_BAD_OFFER');
    }
    if (!this.offerBucket(user.fingerprint).take(this.now())) {
      return this.reject('CALL_OFFER_RATE');
    }
    if (this.calls.has(offer.call_id) || this.transit.has(offer.call_id)) {
      return this.reject('CALL_DUPLICATE_ID');
    }
    if (this.callsOf(user.fingerprint) >= this.config.call_max_concurrent) {
      return this.reject('CALL_TOO_MANY');
    }
    const callerSide: Side = { user, via: null };
    const target = this.users.get(offer.target_fingerprint);
    if (target !== undefined) {
      const refusal = this.calleeRefusal(target.fingerprint);
      if (refusal === 'busy') {
        user.send(hangup(offer.call_id, 'Busy'));
        this.metrics.calls.labels('busy').inc();
        return null;
      }
      if (refusal !== null) {
        return this.reject(refusal);
      }
      const call = this.newCall(offer, callerSide, { user: target, via: null }, 'ringing');
      target.send({ type: 'DirectCallOffer', body: offer });
      user.send({ type: 'CallRinging', body: { call_id: call.id } });
      this.armTimer(call, this.config.call_ring_timeout_ms);
      return null;
    }
    const links = this.links;
    if (links === null) {
      return this.unreachable(user, offer.call_id);
    }
    const call = this.newCall(offer, callerSide, { user: null, via: null }, 'routing');
    this.armTimer(call, this.config.call_route_timeout_ms);
    const locator = this.locator;
    if (locator !== null) {
      // Ask the fleet directory first; the call can be cancelled meanwhile.
      void locator.locate(offer.target_fingerprint).then(
        (peerId) => this.routeOffer(call, peerId),
        () => this.routeOffer(call, null),
      );
      return null;
    }
    this.routeOffer(call, null);
    return null;
  }

  /**
   * Sends a local caller's offer toward a callee registered elsewhere: to the
   * relay the directory named, else over every link (a path and hop limit
   * bound the flood). Nobody to send to: the caller hears `unreachable`.
   */
  private routeOffer(call: Call, peerId: string | null): void {
    const links = this.links;
    if (this.calls.get(call.id) !== call || call.state !== 'routing' || links === null) {
      return;
    }
    const body = this.envelope(call.id, call.callee, { type: 'DirectCallOffer', body: call.offer });
    if (peerId !== null && links.sendCallSignal(peerId, body)) {
      call.calleeSide.via = peerId;
      this.metrics.callForwards.labels('directory').inc();
      return;
    }
    // Every relay of the fleet publishes its users: when the directory does not
    // know the callee, only configured federation peers may still have them.
    const sent = links.broadcastCallSignal(body, null, this.locator !== null);
    if (sent === 0) {
      if (call.callerSide.user !== null) {
        this.unreachable(call.callerSide.user, call.id);
      }
      this.end(call, null);
      return;
    }
    this.metrics.callForwards.labels('sent').inc(sent);
  }

  usesPeer(peerId: string): boolean {
    for (const c of this.calls.values()) {
      if (c.callerSide.via === peerId || c.calleeSide.via === peerId) {
        return true;
      }
    }
    return false;
  }

  /** A DirectCallAnswer from a registered local user (the callee). */
  answer(user: HubUser, answer: BodyOf<'DirectCallAnswer'>): ErrorCode | null {
    const call = this.calls.get(answer.call_id);
    if (call === undefined) {
      return this.reject('CALL_NOT_FOUND');
    }
    if (call.calleeSide.user !== user || call.state !== 'ringing') {
      return this.reject('CALL_NOT_PARTY');
    }
    return this.onAnswer(call, answer);
  }

  /**
   * Hangup, CandidateUpdate, MediaPathReport, Upgrade*, QualityCapability from
   * a local party: forwarded to the other party; a Hangup also ends the call.
   */
  callSignal(
    user: HubUser,
    msg: OutgoingSignal & { body: { call_id?: string } },
  ): ErrorCode | null {
    const id = msg.body?.call_id;
    const call = id === undefined ? undefined : this.calls.get(id);
    if (call === undefined) {
      return this.reject('CALL_NOT_FOUND');
    }
    const fromCaller = call.callerSide.user === user;
    if (!fromCaller && call.calleeSide.user !== user) {
      return this.reject('CALL_NOT_PARTY');
    }
    this.forwardFrom(call, fromCaller, msg);
    return null;
  }

  /**
   * Admission to a `call-<id>` room: only the call's two parties, once the
   * call is active and hosted here, and each at most once (`present` are the
   * fingerprints already in the room).
   */
  admit(room: string, who: string, present: readonly string[]): ErrorCode | null {
    const call = this.calls.get(room.slice(CALL_ROOM_PREFIX.length));
    if (
      call === undefined ||
      call.room !== room ||
      call.state !== 'active' ||
      call.host !== this.o.publicUrl()
    ) {
      return this.reject('CALL_NOT_FOUND');
    }
    if ((who !== call.caller && who !== call.callee) || present.includes(who)) {
      return this.reject('CALL_NOT_PARTY');
    }
    return null;
  }

  /** Ends every call (relay shutdown): each local party gets a Hangup. */
  close(): void {
    for (const call of [...this.calls.values()]) {
      for (const side of [call.callerSide, call.calleeSide]) {
        side.user?.send(hangup(call.id, 'Shutdown'));
      }
      this.end(call, call.state === 'active' ? null : 'failed');
    }
  }

  /** `/v2/calls`: what the hub holds (no fingerprints of people who are not in a call). */
  json(): unknown {
    const now = this.now();
    return {
      registered: this.users.size,
      visibility: this.config.presence_visibility,
      calls: [...this.calls.values()].map((c) => ({
        call_id: c.id,
        state: c.state,
        room: c.room,
        host: c.host,
        caller: c.caller,
        callee: c.callee,
        caller_local: c.callerSide.user !== null,
        callee_local: c.calleeSide.user !== null,
        age_ms: Math.round(now - c.startedMs),
      })),
      transit_routes: this.transit.size,
    };
  }

  // ── calls across relays ──────────────────────────────────────────────────

  onForwarded(fromPeer: string, body: BodyOf<'CallSignalForward'>): void {
    const links = this.links;
    if (links === null) {
      return;
    }
    if (body.path.includes(links.selfId)) {
      this.metrics.callForwards.labels('loop').inc();
      return;
    }
    let inner: ReturnType<typeof decodeSignal>;
    try {
      inner = decodeSignal(body.inner, MAX_INNER_BYTES);
    } catch {
      this.metrics.callForwards.labels('unroutable').inc();
      return;
    }
    if (
      'call_id' in (inner.body ?? {}) &&
      (inner.body as { call_id: string }).call_id !== body.call_id
    ) {
      this.metrics.callForwards.labels('unroutable').inc();
      return;
    }
    const target = this.users.get(body.target_fingerprint);
    if (target !== undefined) {
      this.metrics.callForwards.labels('delivered').inc();
      this.deliverForwarded(fromPeer, target, body, inner);
      return;
    }
    this.transitForward(fromPeer, body, inner);
  }

  private deliverForwarded(
    fromPeer: string,
    target: HubUser,
    body: BodyOf<'CallSignalForward'>,
    inner: ReturnType<typeof decodeSignal>,
  ): void {
    if (inner.type === 'DirectCallOffer') {
      this.remoteOffer(fromPeer, target, inner.body);
      return;
    }
    const call = this.calls.get(body.call_id);
    if (call === undefined) {
      this.metrics.callForwards.labels('unroutable').inc();
      return;
    }
    // The message travels toward `target`; it comes from the other side.
    const toCaller = call.callerSide.user === target;
    if (!toCaller && call.calleeSide.user !== target) {
      this.metrics.callForwards.labels('unroutable').inc();
      return;
    }
    const from = toCaller ? call.calleeSide : call.callerSide;
    if (from.user !== null || (from.via !== null && from.via !== fromPeer)) {
      this.metrics.callForwards.labels('unroutable').inc();
      return;
    }
    from.via = fromPeer;
    switch (inner.type) {
      case 'CallRinging':
        if (toCaller && call.state === 'routing') {
          call.state = 'ringing';
          // The callee's relay enforces the ring timeout; this is a backstop.
          this.armTimer(call, this.config.call_ring_timeout_ms + this.config.call_route_timeout_ms);
        }
        target.send(inner);
        return;
      case 'CallSetup':
        if (toCaller && call.state !== 'active') {
          call.state = 'active';
          call.host = inner.body.relay_addr;
          this.clearTimer(call);
          this.metrics.calls.labels('answered').inc();
          this.metrics.callRingSeconds.observe((this.now() - call.startedMs) / 1000);
        }
        target.send(inner);
        return;
      case 'Hangup': {
        target.send(inner);
        const reason = inner.body.reason;
        this.end(call, call.state === 'active' ? null : outcomeOfHangup(reason, toCaller));
        return;
      }
      default:
        target.send(inner as OutgoingSignal);
    }
  }

  /** An offer from a caller on another relay for a user registered here. */
  private remoteOffer(fromPeer: string, target: HubUser, offer: BodyOf<'DirectCallOffer'>): void {
    if (this.calls.has(offer.call_id)) {
      // The same offer by a second path: the first one is being served.
      this.metrics.callForwards.labels('duplicate').inc();
      return;
    }
    const callerSide: Side = { user: null, via: fromPeer };
    const back = (msg: OutgoingSignal): void => {
      this.links?.sendCallSignal(
        fromPeer,
        this.envelope(offer.call_id, offer.caller_fingerprint, msg),
      );
    };
    if (
      fingerprint(offer.identity_pub) !== offer.caller_fingerprint ||
      !verifyCallOffer(offer.identity_pub, offer.ephemeral_pub, offer.signature)
    ) {
      this.reject('CALL_BAD_OFFER');
      back(hangup(offer.call_id, 'Error'));
      this.metrics.calls.labels('failed').inc();
      return;
    }
    const refusal = this.calleeRefusal(target.fingerprint);
    if (refusal !== null) {
      if (refusal !== 'busy') {
        this.reject(refusal);
      }
      back(hangup(offer.call_id, 'Busy'));
      this.metrics.calls.labels('busy').inc();
      return;
    }
    const call = this.newCall(offer, callerSide, { user: target, via: null }, 'ringing');
    target.send({ type: 'DirectCallOffer', body: offer });
    back({ type: 'CallRinging', body: { call_id: call.id } });
    this.armTimer(call, this.config.call_ring_timeout_ms);
  }

  /** A relay in the middle of the path: pass the signal on toward its target. */
  private transitForward(
    fromPeer: string,
    body: BodyOf<'CallSignalForward'>,
    inner: ReturnType<typeof decodeSignal>,
  ): void {
    const links = this.links as CallLinks;
    if (body.hops <= 1) {
      this.metrics.callForwards.labels('hop_limit').inc();
      return;
    }
    const now = this.now();
    const next: BodyOf<'CallSignalForward'> = {
      ...body,
      path: [...body.path, links.selfId].slice(0, 16),
      hops: body.hops - 1,
    };
    let route = this.transit.get(body.call_id);
    if (route !== undefined && now - route.lastUsedMs > TRANSIT_TTL_MS) {
      this.transit.delete(body.call_id);
      route = undefined;
    }
    if (route === undefined) {
      if (inner.type !== 'DirectCallOffer') {
        this.metrics.callForwards.labels('unroutable').inc();
        return;
      }
      this.sweepTransit(now);
      this.transit.set(body.call_id, { callerVia: fromPeer, calleeVia: null, lastUsedMs: now });
      const sent = links.broadcastCallSignal(next, fromPeer);
      this.metrics.callForwards.labels('transit').inc(sent);
      return;
    }
    route.lastUsedMs = now;
    if (inner.type === 'DirectCallOffer') {
      this.metrics.callForwards.labels('duplicate').inc();
      return;
    }
    if (fromPeer === route.callerVia) {
      if (route.calleeVia !== null && links.sendCallSignal(route.calleeVia, next)) {
        this.metrics.callForwards.labels('transit').inc();
      } else {
        this.metrics.callForwards.labels('unroutable').inc();
      }
      return;
    }
    route.calleeVia ??= fromPeer;
    if (fromPeer === route.calleeVia && links.sendCallSignal(route.callerVia, next)) {
      this.metrics.callForwards.labels('transit').inc();
    } else {
      this.metrics.callForwards.labels('unroutable').inc();
    }
    if (inner.type === 'Hangup') {
      this.transit.delete(body.call_id);
    }
  }

  private sweepTransit(now: number): void {
    for (const [id, r] of this.transit) {
      if (this.transit.size < MAX_TRANSIT && now - r.lastUsedMs <= TRANSIT_TTL_MS) {
        break;
      }
      this.transit.delete(id);
    }
  }

  // ── shared ───────────────────────────────────────────────────────────────

  private onAnswer(call: Call, answer: BodyOf<'DirectCallAnswer'>): ErrorCode | null {
    if (answer.accept_mode === 'Reject') {
      this.deliver(call, call.callerSide, call.caller, { type: 'DirectCallAnswer', body: answer });
      this.deliver(call, call.callerSide, call.caller, hangup(call.id, 'Declined'));
      this.metrics.callRingSeconds.observe((this.now() - call.startedMs) / 1000);
      this.end(call, 'rejected');
      return null;
    }
    const { identity_pub: idPub, ephemeral_pub: eph, signature } = answer;
    if (
      idPub === undefined ||
      eph === undefined ||
      signature === undefined ||
      fingerprint(idPub) !== call.callee ||
      !verifyCallAnswer(idPub, eph, signature)
    ) {
      return this.reject('CALL_BAD_ANSWER');
    }
    call.state = 'active';
    call.host = this.o.publicUrl();
    this.clearTimer(call);
    this.metrics.calls.labels('answered').inc();
    this.metrics.callRingSeconds.observe((this.now() - call.startedMs) / 1000);
    const setup = (
      peerFp: string,
      peerId: Uint8Array,
      peerEph: Uint8Array,
      peerSig: Uint8Array,
      peerAddrs: { direct?: string | undefined; local?: string[] | undefined },
    ): OutgoingSignal => ({
      type: 'CallSetup',
      body: {
        call_id: call.id,
        room: call.room,
        relay_addr: call.host as string,
        peer_fingerprint: peerFp,
        peer_identity_pub: peerId,
        peer_ephemeral_pub: peerEph,
        peer_signature: peerSig,
        ...(answer.chosen_profile !== undefined ? { chosen_profile: answer.chosen_profile } : {}),
        ...(peerAddrs.direct !== undefined ? { peer_direct_addr: peerAddrs.direct } : {}),
        ...(peerAddrs.local !== undefined ? { peer_local_addrs: peerAddrs.local } : {}),
      },
    });
    this.deliver(call, call.callerSide, call.caller, { type: 'DirectCallAnswer', body: answer });
    this.deliver(
      call,
      call.callerSide,
      call.caller,
      setup(call.callee, idPub, eph, signature, {
        direct: answer.callee_reflexive_addr,
        local: answer.callee_local_addrs,
      }),
    );
    this.deliver(
      call,
      call.calleeSide,
      call.callee,
      setup(call.caller, call.offer.identity_pub, call.offer.ephemeral_pub, call.offer.signature, {
        direct: call.offer.caller_reflexive_addr,
        local: call.offer.caller_local_addrs,
      }),
    );
    this.log.info({ call_id: call.id, room: call.room }, 'call answered');
    return null;
  }

  /** A signal from one party to the other; a Hangup ends the call. */
  private forwardFrom(call: Call, fromCaller: boolean, msg: OutgoingSignal): void {
    const to = fromCaller ? call.calleeSide : call.callerSide;
    const toFp = fromCaller ? call.callee : call.caller;
    this.deliver(call, to, toFp, msg);
    if (msg.type === 'Hangup') {
      this.end(
        call,
        call.state === 'active'
          ? null
          : fromCaller
            ? 'cancelled'
            : outcomeOfHangup(msg.body.reason, false),
      );
    }
  }

  /** Sends to a party: directly when local, else over its link (or every link until learned). */
  private deliver(call: Call, side: Side, fp: string, msg: OutgoingSignal): void {
    if (side.user !== null) {
      side.user.send(msg);
      return;
    }
    const links = this.links;
    if (links === null) {
      return;
    }
    const body = this.envelope(call.id, fp, msg);
    if (side.via !== null) {
      if (links.sendCallSignal(side.via, body)) {
        this.metrics.callForwards.labels('sent').inc();
      }
      return;
    }
    this.metrics.callForwards.labels('sent').inc(links.broadcastCallSignal(body, null));
  }

  private envelope(
    callId: string,
    target: string,
    msg: OutgoingSignal,
  ): BodyOf<'CallSignalForward'> {
    return {
      version: 1,
      call_id: callId,
      target_fingerprint: target,
      path: [(this.links as CallLinks).selfId],
      hops: this.config.call_max_hops,
      inner: encodeSignal(msg),
    };
  }

  private newCall(
    offer: BodyOf<'DirectCallOffer'>,
    callerSide: Side,
    calleeSide: Side,
    state: Call['state'],
  ): Call {
    const call: Call = {
      id: offer.call_id,
      room: `${CALL_ROOM_PREFIX}${offer.call_id}`,
      caller: offer.caller_fingerprint,
      callee: offer.target_fingerprint,
      callerSide,
      calleeSide,
      state,
      offer,
      startedMs: this.now(),
      timer: null,
      host: null,
    };
    this.calls.set(call.id, call);
    return call;
  }

  /** Why a callee cannot take another call now, or null. */
  private calleeRefusal(callee: string): 'busy' | ErrorCode | null {
    let ringing = 0;
    let active = 0;
    for (const c of this.calls.values()) {
      if (c.caller === callee || c.callee === callee) {
        if (c.state === 'active') {
          active++;
        } else if (c.callee === callee) {
          ringing++;
        }
      }
    }
    if (this.config.call_busy && active > 0) {
      return 'busy';
    }
    if (ringing >= this.config.call_max_ringing) {
      return 'CALL_TOO_MANY_RINGING';
    }
    if (this.callsOf(callee) >= this.config.call_max_concurrent) {
      return 'busy';
    }
    return null;
  }

  private callsOf(fp: string): number {
    let n = 0;
    for (const c of this.calls.values()) {
      if (c.caller === fp || c.callee === fp) {
        n++;
      }
    }
    return n;
  }

  private offerBucket(fp: string): TokenBucket {
    let b = this.offerBuckets.get(fp);
    if (b === undefined) {
      const perMin = this.config.call_offers_per_minute;
      b = new TokenBucket(perMin / 60, perMin, this.now());
      this.offerBuckets.set(fp, b);
    }
    return b;
  }

  private unreachable(user: HubUser, callId: string): null {
    user.send({
      type: 'Error',
      body: {
        code: 'CALL_NOT_FOUND',
        message: 'the target is not registered on any reachable relay',
      },
    });
    user.send(hangup(callId, 'Normal'));
    this.metrics.calls.labels('unreachable').inc();
    return null;
  }

  private armTimer(call: Call, ms: number): void {
    this.clearTimer(call);
    call.timer = setTimeout(() => this.expire(call), ms);
    call.timer.unref();
  }

  private clearTimer(call: Call): void {
    if (call.timer !== null) {
      clearTimeout(call.timer);
      call.timer = null;
    }
  }

  /** Nobody answered in time (or, across relays, nobody rang). */
  private expire(call: Call): void {
    call.timer = null;
    if (this.calls.get(call.id) !== call || call.state === 'active') {
      return;
    }
    if (call.state === 'routing') {
      if (call.callerSide.user !== null) {
        this.unreachable(call.callerSide.user, call.id);
      }
      this.end(call, null);
      return;
    }
    this.deliver(call, call.callerSide, call.caller, hangup(call.id, 'Timeout'));
    this.deliver(call, call.calleeSide, call.callee, hangup(call.id, 'Timeout'));
    this.end(call, 'timeout');
  }

  private end(call: Call, outcome: CallOutcome | null): void {
    if (this.calls.get(call.id) !== call) {
      return;
    }
    this.clearTimer(call);
    this.calls.delete(call.id);
    if (outcome !== null) {
      this.metrics.calls.labels(outcome).inc();
    }
    if (call.callerSide.via !== null || call.calleeSide.via !== null) {
      this.links?.callsChanged?.();
    }
    if (call.host !== null) {
      this.o.onCallEnded?.(call.room);
    }
  }

  private reject(code: ErrorCode): ErrorCode {
    this.metrics.hubRejections.labels(code).inc();
    return code;
  }
}

function hangup(callId: string, reason: HangupReason): OutgoingSignal {
  return { type: 'Hangup', body: { reason, call_id: callId } };
}

function outcomeOfHangup(reason: HangupReason, toCaller: boolean): CallOutcome {
  if (reason === 'Busy') {
    return 'busy';
  }
  if (reason === 'Timeout') {
    return 'timeout';
  }
  if (reason === 'Declined') {
    return 'rejected';
  }
  return toCaller ? 'rejected' : 'cancelled';
}
