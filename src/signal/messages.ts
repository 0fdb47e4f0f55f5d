/**
 * SignalMessage variants of the binding (protocol/BINDING.md §2) and their
 * schemas. In memory a message is `{ type, body }` with the wire's
 * snake_case field names in `body`; on the wire it is the externally tagged
 * map `{ [type]: body }` (or the bare string for unit variants).
 */
import { z } from 'zod';
// codec-table directly: this module is also bundled for browsers (src/browser), and wire/index.js
// re-exports modules that use node:crypto.
import { CODECS, type CodecName } from '../wire/codec-table.js';

const CODEC_NAMES = CODECS.map((c) => c.name) as [CodecName, ...CodecName[]];

const u8 = z.number().int().min(0).max(0xff);
const u16 = z.number().int().min(0).max(0xffff);
const u32 = z.number().int().min(0).max(0xffffffff);
const u64 = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const version = u8.default(1);
const bin = (len: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === len, {
    message: `must be ${len} bytes of bin`,
  });
const text = (max: number) => z.string().max(max);
const nullableText = (max: number) => text(max).nullable().default(null);

export const codecNameSchema = z.enum(CODEC_NAMES);

/** A binary field of at most `max` bytes. */
const binMax = (max: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= max, {
    message: `must be at most ${max} bytes of bin`,
  });
/** A fingerprint as `fingerprint()` prints it (8 groups of 4 hex digits). */
const fingerprintText = z.string().regex(/^([0-9a-f]{4}:){7}[0-9a-f]{4}$/, 'must be a fingerprint');
/** A call id: 1–64 characters of [A-Za-z0-9_-] (it becomes part of the room name). */
const callId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 of [A-Za-z0-9_-]');
const addrText = text(256);
/** A relay id: 16 lowercase hex characters. */
const relayIdText = z.string().regex(/^[0-9a-f]{16}$/);

export const qualityProfileSchema = z.object({
  codec: codecNameSchema,
  fec_ratio: z.number().min(0).max(10),
  frame_duration_ms: u8,
  frames_per_block: u8,
  priority_mode: z
    .enum(['AudioFirst', 'VideoFirst', 'ScreenShare', 'Balanced'])
    .default('AudioFirst'),
  video_bitrate_kbps: u32.nullable().default(null),
  video_resolution: z.tuple([u16, u16]).nullable().default(null),
  video_fps: u8.nullable().default(null),
});

export const hangupReasonSchema = z.union([
  z.enum(['Normal', 'Busy', 'Declined', 'Timeout', 'Error', 'Shutdown']),
  z
    .object({ ProtocolVersionMismatch: z.object({ server_supported: z.array(u8).max(16) }) })
    .strict(),
  z.object({ PolicyViolation: z.object({ code: text(64), reason: text(1024) }) }).strict(),
]);

export const roomParticipantSchema = z.object({
  fingerprint: text(128),
  alias: nullableText(256),
  relay_label: nullableText(256),
  tag: u16,
});

/**
 * A participant in a federation announcement: the RoomUpdate fields (tag =
 * the tag at the origin relay) plus the path of relay ids (16 hex
 * characters each) the announcement travelled, origin first.
 */
export const federatedParticipantSchema = roomParticipantSchema.extend({
  path: z
    .array(z.string().regex(/^[0-9a-f]{16}$/))
    .min(1)
    .max(16),
});

/** Every struct variant, its body schema. Adding a variant is one entry. */
export const VARIANTS = {
  AuthToken: z.object({ version, token: text(8192) }),
  CallOffer: z.object({
    version,
    identity_pub: bin(32),
    ephemeral_pub: bin(32),
    signature: bin(64),
    supported_profiles: z.array(qualityProfileSchema).max(32),
    alias: nullableText(256),
    // No default: a missing protocol_version means an old client and is rejected.
    protocol_version: u8.optional(),
    supported_versions: z.array(u8).max(16).optional(),
    video_codecs: z.array(codecNameSchema).max(16).optional(),
    room: text(1024),
  }),
  CallAnswer: z.object({
    version,
    identity_pub: bin(32),
    ephemeral_pub: bin(32),
    signature: bin(64),
    chosen_profile: qualityProfileSchema,
    video_codec: codecNameSchema.optional(),
    udp_port: u16,
    bind_token: bin(16),
    participant_tag: u16,
  }),
  RoomUpdate: z.object({
    version,
    count: u32,
    participants: z.array(roomParticipantSchema).max(100_000),
  }),
  QualityDirective: z.object({
    version,
    recommended_profile: qualityProfileSchema,
    reason: text(1024).optional(),
  }),
  /**
   * Keyframe request. `tag`: the participant tag of the sender whose picture
   * is lost (as in TRUNK entries); without it, every sender of video on
   * `stream_id` (BINDING.md §6.1).
   */
  PictureLossIndication: z.object({ version, stream_id: u8, tag: u16.nullable().optional() }),
  /** What a receiver wants from one sender (`tag`) or from every sender (`tag` nil), §6.3. */
  SubscriptionUpdate: z.object({
    version,
    tag: u16.nullable().default(null),
    audio: z.boolean().nullable().optional(),
    video: z.boolean().nullable().optional(),
    max_layer: u8.nullable().optional(),
  }),
  /** Downstream feedback of a receiver (from the original protocol), §6.4. */
  TransportFeedback: z.object({
    version,
    stream_id: u8,
    acked_seqs: z.array(u32).max(4096).default([]),
    nacked_seqs: z.array(u32).max(4096).default([]),
    remb_bps: u32,
    recv_time_us: u64.default(0),
  }),
  /** The receiver lost a frame of sender `tag`: its next frame comes FULL (§4.5). */
  ResyncRequest: z.object({ version, tag: u16 }),
  /**
   * Relay ↔ relay: the highest video layer of a participant of `origin` (its tag
   * there) the sender of this message may need (−1: none), §8.5.
   */
  FederationLayerDemand: z.object({
    version,
    room: text(1024),
    origin: z.string().regex(/^[0-9a-f]{16}$/),
    tag: u16,
    max_layer: z.number().int().min(-1).max(255),
  }),
  /** Relay ↔ relay: a PLI for a participant of `origin` (its tag there), §8.5. */
  FederationPli: z.object({
    version,
    room: text(1024),
    origin: z.string().regex(/^[0-9a-f]{16}$/),
    tag: u16,
    stream_id: u8,
  }),
  Ping: z.object({ version, timestamp_ms: u64 }),
  Pong: z.object({ version, timestamp_ms: u64 }),
  Hangup: z.object({ version, reason: hangupReasonSchema, call_id: text(256).optional() }),
  // `count` (wzp-relay extension): rejections this reply stands for, when
  // replies were rate-limited (absent = 1).
  Error: z.object({ version, code: text(64), message: text(4096), count: u32.optional() }),
  /**
   * Fleet (docs/fleet.md): the room lives on another relay; connect there.
   * Sent instead of CallAnswer; the relay then closes the connection.
   */
  Redirect: z.object({
    version,
    url: z
      .string()
      .max(2048)
      .regex(/^wss?:\/\/[^\s]+$/),
    room: text(1024).optional(),
    relay_label: nullableText(64),
  }),
  GlobalRoomActive: z.object({
    version,
    room: text(1024),
    participants: z.array(federatedParticipantSchema).max(100_000).default([]),
  }),
  // ── relay ↔ relay link handshake (protocol/BINDING.md §8) ──
  FederationHello: z.object({
    version,
    identity_pub: bin(32),
    nonce: bin(32),
    label: text(64),
    protocol_version: u8,
  }),
  FederationChallenge: z.object({
    version,
    identity_pub: bin(32),
    nonce: bin(32),
    signature: bin(64),
    label: text(64),
  }),
  FederationAuth: z.object({ version, signature: bin(64) }),
  FederationReady: z.object({ version, udp_port: u16, bind_token: bin(16) }),
  GlobalRoomInactive: z.object({ version, room: text(1024) }),
  // ── direct-call hub (protocol/BINDING.md §9) ──
  RegisterPresence: z.object({
    version,
    identity_pub: bin(32),
    /** Ed25519 by identity_pub over "register-presence" ‖ identity_pub. */
    signature: bin(64),
    alias: nullableText(256),
    /** Fingerprints this user wants to see and be seen by (visibility "contacts"). */
    contacts: z.array(fingerprintText).max(1000).default([]),
  }),
  RegisterPresenceAck: z.object({
    version,
    success: z.boolean(),
    error: text(1024).optional(),
    fingerprint: fingerprintText.optional(),
    relay_build: text(64).optional(),
    relay_region: text(64).optional(),
  }),
  PresenceList: z.object({
    version,
    users: z
      .array(z.object({ fingerprint: fingerprintText, alias: nullableText(256) }))
      .max(10_000),
  }),
  DirectCallOffer: z.object({
    version,
    caller_fingerprint: fingerprintText,
    caller_alias: nullableText(256),
    target_fingerprint: fingerprintText,
    call_id: callId,
    identity_pub: bin(32),
    /** X25519 public key of this call (the call key is derived from it, docs/calls.md). */
    ephemeral_pub: bin(32),
    /** Ed25519 by identity_pub over ephemeral_pub ‖ "call-offer". */
    signature: bin(64),
    supported_profiles: z.array(qualityProfileSchema).max(32),
    video_codecs: z.array(codecNameSchema).max(16).optional(),
    caller_reflexive_addr: addrText.optional(),
    caller_local_addrs: z.array(addrText).max(8).optional(),
  }),
  DirectCallAnswer: z.object({
    version,
    call_id: callId,
    accept_mode: z.enum(['Reject', 'AcceptTrusted', 'AcceptGeneric']),
    identity_pub: bin(32).optional(),
    ephemeral_pub: bin(32).optional(),
    /** Ed25519 by identity_pub over ephemeral_pub ‖ "call-answer". */
    signature: bin(64).optional(),
    chosen_profile: qualityProfileSchema.optional(),
    callee_reflexive_addr: addrText.optional(),
    callee_local_addrs: z.array(addrText).max(8).optional(),
  }),
  CallRinging: z.object({ version, call_id: callId }),
  CallSetup: z.object({
    version,
    call_id: callId,
    /** The room both parties join: "call-<call_id>". */
    room: text(128),
    /** Signalling URL of the relay that hosts the room. */
    relay_addr: addrText,
    peer_fingerprint: fingerprintText,
    peer_identity_pub: bin(32),
    peer_ephemeral_pub: bin(32),
    peer_signature: bin(64),
    chosen_profile: qualityProfileSchema.optional(),
    peer_direct_addr: addrText.optional(),
    peer_local_addrs: z.array(addrText).max(8).optional(),
  }),
  ReflectResponse: z.object({ version, observed_addr: addrText }),
  CandidateUpdate: z.object({
    version,
    call_id: callId,
    reflexive_addr: addrText.optional(),
    local_addrs: z.array(addrText).max(8).optional(),
    mapped_addr: addrText.optional(),
    generation: u32.default(0),
  }),
  MediaPathReport: z.object({
    version,
    call_id: callId,
    direct_ok: z.boolean(),
    race_winner: text(64).default(''),
  }),
  UpgradeProposal: z.looseObject({ version, call_id: callId }),
  UpgradeResponse: z.looseObject({ version, call_id: callId }),
  UpgradeConfirm: z.looseObject({ version, call_id: callId }),
  QualityCapability: z.looseObject({ version, call_id: callId }),
  /**
   * Relay ↔ relay: a call signal travelling to the relay where `target` is
   * registered. `inner` is the msgpack-encoded signal; `path` lists the relay
   * ids it passed (loop guard), `hops` what is left of its hop limit.
   */
  CallSignalForward: z.object({
    version,
    call_id: callId,
    target_fingerprint: fingerprintText,
    path: z.array(relayIdText).min(1).max(16),
    hops: u8,
    inner: binMax(64 * 1024),
  }),
} as const;

/** Unit variants (a bare string on the wire). */
export const UNIT_VARIANTS = ['Reflect'] as const;

export type VariantName = keyof typeof VARIANTS;
export type UnitVariantName = (typeof UNIT_VARIANTS)[number];

export type BodyOf<T extends VariantName> = z.output<(typeof VARIANTS)[T]>;
/** Body as a sender may write it (defaults such as `version` optional). */
export type InputBodyOf<T extends VariantName> = z.input<(typeof VARIANTS)[T]>;

export type SignalMessage =
  | { [K in VariantName]: { type: K; body: BodyOf<K> } }[VariantName]
  | { type: UnitVariantName; body: null };

export type OutgoingSignal =
  | { [K in VariantName]: { type: K; body: InputBodyOf<K> } }[VariantName]
  | { type: UnitVariantName; body: null };

export type QualityProfileBody = z.output<typeof qualityProfileSchema>;
export type HangupReason = z.output<typeof hangupReasonSchema>;
export type RoomParticipant = z.output<typeof roomParticipantSchema>;
export type FederatedParticipant = z.output<typeof federatedParticipantSchema>;

export function isVariantName(name: string): name is VariantName {
  return Object.hasOwn(VARIANTS, name);
}
