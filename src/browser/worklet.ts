/**
 * The playback AudioWorklet (bundled on its own as wzp-worklet.js): one
 * jitter buffer per sender, mixed into the output.
 *
 * Per sender: decoded 48 kHz mono PCM chunks queue up; playback of a sender
 * starts once `targetMs` are queued (and again after an underrun), and when
 * more than `maxMs` are queued the oldest samples are dropped down to the
 * target, so latency stays bounded whatever the network did.
 */
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
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
    this.port.onmessage = (ev: MessageEvent) => {
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
