/**
 * The codec table of WZP v2 (`codec_id`, header byte 3).
 *
 * Ids 0-9, 11 and 12 are defined; 10 (reserved for H.264 Main), 13
 * (reserved for VP9) and 14-255 are rejected by the decoder.
 */

export type CodecKind = 'audio' | 'video';

export type CodecName =
  | 'Opus24k'
  | 'Opus16k'
  | 'Opus6k'
  | 'Codec2_3200'
  | 'Codec2_1200'
  | 'ComfortNoise'
  | 'Opus32k'
  | 'Opus48k'
  | 'Opus64k'
  | 'H264Baseline'
  | 'H265Main'
  | 'Av1Main';

export interface CodecInfo {
  readonly id: number;
  readonly name: CodecName;
  readonly kind: CodecKind;
  /** Nominal bitrate in bits per second. */
  readonly bitrateBps: number;
  /** Frame duration in milliseconds. */
  readonly frameMs: number;
  /** Sample rate in Hz (48 000 is a placeholder for video codecs). */
  readonly sampleRateHz: number;
  /** Typical upper bound of one payload in bytes (used by conformance checks, not by the decoder). */
  readonly payloadBound: number;
}

function codec(
  id: number,
  name: CodecName,
  kind: CodecKind,
  bitrateBps: number,
  frameMs: number,
  sampleRateHz: number,
  payloadBound: number,
): CodecInfo {
  return Object.freeze({ id, name, kind, bitrateBps, frameMs, sampleRateHz, payloadBound });
}

/** Every defined codec, in id order. */
export const CODECS: readonly CodecInfo[] = Object.freeze([
  codec(0, 'Opus24k', 'audio', 24_000, 20, 48_000, 160),
  codec(1, 'Opus16k', 'audio', 16_000, 20, 48_000, 100),
  codec(2, 'Opus6k', 'audio', 6_000, 40, 48_000, 90),
  codec(3, 'Codec2_3200', 'audio', 3_200, 20, 8_000, 30),
  codec(4, 'Codec2_1200', 'audio', 1_200, 40, 8_000, 30),
  codec(5, 'ComfortNoise', 'audio', 0, 20, 48_000, 16),
  codec(6, 'Opus32k', 'audio', 32_000, 20, 48_000, 200),
  codec(7, 'Opus48k', 'audio', 48_000, 20, 48_000, 240),
  codec(8, 'Opus64k', 'audio', 64_000, 20, 48_000, 320),
  codec(9, 'H264Baseline', 'video', 2_000_000, 33, 48_000, 1400),
  codec(11, 'H265Main', 'video', 2_000_000, 33, 48_000, 1400),
  codec(12, 'Av1Main', 'video', 2_000_000, 33, 48_000, 1400),
]);

/**
 * Kind per codec id for the hot path: 0 = unknown, 1 = audio, 2 = video.
 * A flat typed array indexed by the byte avoids a lookup object per packet.
 */
export const CODEC_KIND_BY_ID: Uint8Array = (() => {
  const table = new Uint8Array(256);
  for (const c of CODECS) {
    table[c.id] = c.kind === 'audio' ? 1 : 2;
  }
  return table;
})();

export const CODEC_KIND_UNKNOWN = 0;
export const CODEC_KIND_AUDIO = 1;
export const CODEC_KIND_VIDEO = 2;

/** Codec per id byte, dense: the policer looks one up per packet. */
const BY_ID: readonly (CodecInfo | undefined)[] = (() => {
  const table = new Array<CodecInfo | undefined>(256).fill(undefined);
  for (const c of CODECS) {
    table[c.id] = c;
  }
  return table;
})();
const BY_NAME = new Map<string, CodecInfo>(CODECS.map((c) => [c.name, c]));

/** The codec with this id, or undefined for reserved/unknown ids. */
export function codecById(id: number): CodecInfo | undefined {
  return BY_ID[id];
}

/** The codec with this name (as used in signalling JSON/msgpack), or undefined. */
export function codecByName(name: string): CodecInfo | undefined {
  return BY_NAME.get(name);
}

/** True if `id` is a defined codec id. */
export function isKnownCodec(id: number): boolean {
  return (CODEC_KIND_BY_ID[id] ?? 0) !== 0;
}
