/**
 * The playback AudioWorklet (bundled on its own as wzp-worklet.js): one
 * jitter buffer per sender, mixed into the output.
 *
 * Per sender: decoded 48 kHz mono PCM chunks queue up; playback of a sender
 * starts once `targetMs` are queued (and again after an underrun), and when
 * more than `maxMs` are queued the oldest samples are dropped down to the
 * target, so latency stays bounded whatever the network did. Below the
 * maximum the queue drains too: if even its smallest fill over a half-second
 * window stayed more than `DRAIN_SLACK_MS` above the target, that much audio
 * was never needed against jitter and the excess is dropped, so a burst
 * does not leave the delay high for the rest of the call.
 */
const DRAIN_SLACK_MS = 20;
declare class AudioWorkletProcessor {
  // The parts of MessagePort used here (structural: test/worklet.test.ts runs this in Node).
  readonly port: {
    onmessage: ((ev: { data: unknown }) => void) | null;
    postMessage(message: unknown): void;
  };
}
declare function registerProcessor(name: string, ctor: unknown): void;
declare const sampleRate: number;
declare const currentFrame: number;

interface Queue {
  chunks: Float32Array[];
  offset: number;
  queued: number;
  playing: boolean;
  underruns: number;
  dropped: number;
  played: number;
  /** Smallest fill (samples) since the last drain check, while playing. */
  minQueued: number;
}

/** Drops `n` samples from the head of the queue. */
function dropFront(q: Queue, n: number): void {
  while (n > 0 && q.chunks.length > 0) {
    const c = q.chunks[0] as Float32Array;
    const avail = c.length - q.offset;
    const take = Math.min(avail, n);
    q.offset += take;
    q.queued -= take;
    q.dropped += take;
    n -= take;
    if (q.offset >= c.length) {
      q.chunks.shift();
      q.offset = 0;
    }
  }
}

class WzpPlayback extends AudioWorkletProcessor {
  private readonly queues = new Map<number, Queue>();
  private target = Math.round(sampleRate * 0.06);
  private max = Math.round(sampleRate * 0.3);
  private frames = 0;
  /** Onset detection on the mixed output (measurements): frames of quiet so far. */
  private quietFrames = 0;

  constructor() {
    super();
    this.port.onmessage = (ev: { data: unknown }) => {
      const m = ev.data as
        | { type: 'pcm'; tag: number; samples: Float32Array }
        | { type: 'remove'; tag: number }
        | { type: 'config'; targetMs: number; maxMs: number };
      if (m.type === 'pcm') {
        let q = this.queues.get(m.tag);
        if (q === undefined) {
          q = {
            chunks: [],
            offset: 0,
            queued: 0,
            playing: false,
            underruns: 0,
            dropped: 0,
            played: 0,
            minQueued: Number.POSITIVE_INFINITY,
          };
          this.queues.set(m.tag, q);
        }
        q.chunks.push(m.samples);
        q.queued += m.samples.length;
        // Over the maximum: drop the oldest audio down to the target (one jump, not a crawl).
        if (q.queued > this.max) {
          while (q.queued > this.target && q.chunks.length > 1) {
            const first = q.chunks.shift() as Float32Array;
            const n = first.length - q.offset;
            q.queued -= n;
            q.dropped += n;
            q.offset = 0;
          }
        }
      } else if (m.type === 'remove') {
        this.queues.delete(m.tag);
      } else if (m.type === 'config') {
        this.target = Math.round((sampleRate * m.targetMs) / 1000);
        this.max = Math.round((sampleRate * m.maxMs) / 1000);
      }
    };
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const out = outputs[0];
    const first = out?.[0];
    if (out === undefined || first === undefined) {
      return true;
    }
    const n = first.length;
    first.fill(0);
    for (const q of this.queues.values()) {
      if (!q.playing) {
        if (q.queued < this.target) {
          continue;
        }
        q.playing = true;
      }
      let i = 0;
      while (i < n && q.chunks.length > 0) {
        const c = q.chunks[0] as Float32Array;
        const take = Math.min(n - i, c.length - q.offset);
        for (let k = 0; k < take; k++) {
          first[i + k] = (first[i + k] as number) + (c[q.offset + k] as number);
        }
        i += take;
        q.offset += take;
        q.queued -= take;
        q.played += take;
        if (q.offset >= c.length) {
          q.chunks.shift();
          q.offset = 0;
        }
      }
      if (i < n) {
        q.playing = false;
        q.underruns++;
        q.minQueued = Number.POSITIVE_INFINITY;
      } else if (q.queued < q.minQueued) {
        q.minQueued = q.queued;
      }
    }
    // A rising edge after 200 ms of quiet: report when it reaches the output (latency bench).
    let peak = 0;
    for (let i = 0; i < n; i++) {
      const v = Math.abs(first[i] as number);
      if (v > peak) {
        peak = v;
      }
    }
    if (peak > 0.05) {
      if (this.quietFrames > sampleRate * 0.2) {
        this.port.postMessage({ type: 'onset', frame: currentFrame });
      }
      this.quietFrames = 0;
    } else {
      this.quietFrames += n;
    }
    for (let ch = 1; ch < out.length; ch++) {
      out[ch]?.set(first);
    }
    this.frames += n;
    if (this.frames >= sampleRate / 2) {
      this.frames = 0;
      const slack = (sampleRate * DRAIN_SLACK_MS) / 1000;
      for (const q of this.queues.values()) {
        if (q.playing && q.minQueued !== Number.POSITIVE_INFINITY) {
          if (q.minQueued > this.target + slack) {
            dropFront(q, q.minQueued - this.target);
          }
        }
        q.minQueued = Number.POSITIVE_INFINITY;
      }
      const stats: Record<number, { queuedMs: number; underruns: number; droppedMs: number }> = {};
      for (const [tag, q] of this.queues) {
        stats[tag] = {
          queuedMs: (q.queued / sampleRate) * 1000,
          underruns: q.underruns,
          droppedMs: (q.dropped / sampleRate) * 1000,
        };
      }
      this.port.postMessage({ type: 'stats', stats });
    }
    return true;
  }
}

registerProcessor('wzp-playback', WzpPlayback);
