// Declarations the TypeScript DOM library lacks (Chromium has them).
interface MediaStreamTrackProcessorInit {
  track: MediaStreamTrack;
  maxBufferSize?: number;
}
declare class MediaStreamTrackProcessor<T = VideoFrame | AudioData> {
  constructor(init: MediaStreamTrackProcessorInit);
  readonly readable: ReadableStream<T>;
}
interface AudioContext {
  setSinkId?(id: string): Promise<void>;
}
interface Window {
  wzpStats?: () => unknown;
  wzpCall?: unknown;
}
