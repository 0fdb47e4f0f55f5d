/**
 * The playback worklet's jitter buffer (src/browser/worklet.ts), run in Node
 * with the AudioWorkletGlobalScope names it uses defined: it starts at the
 * target, drops above the maximum, and drains audio that a burst left queued
 * above the target (so the delay does not stay high after a burst).
 */
import { beforeAll, describe, expect, it } from 'vitest';

const RATE = 48_000;
const QUANTUM = 128;

interface Processor {
  port: { onmessage: ((ev: { data: unknown }) => void) | null; posted: unknown[] };
  process(inputs: Float32Array[][], outputs: Float32Array[][]): boolean;
}

let Ctor: new () => Processor;

beforeAll(async () => {
  const g = globalThis as Record<string, unknown>;
  g.sampleRate = RATE;
  g.currentFrame = 0;
  g.AudioWorkletProcessor = class {
    readonly port = {
      onmessage: null as ((ev: { data: unknown }) => void) | null,
      posted: [] as unknown[],
      postMessage(m: unknown) {
        this.posted.push(m);
      },
    };
  };
  g.registerProcessor = (_name: string, ctor: new () => Processor) => {
    Ctor = ctor;
  };
  await import('../src/browser/worklet.js');
});

function feed(p: Processor, ms: number): void {
  for (let i = 0; i < ms / 20; i++) {
    p.port.onmessage?.({ data: { type: 'pcm', tag: 1, samples: new Float32Array(960).fill(0.1) } });
  }
}

/** Runs `ms` of output (a multiple of 8 ms: whole render quanta); returns the last stats. */
function play(p: Processor, ms: number): { queuedMs: number; droppedMs: number } {
  const out = [[new Float32Array(QUANTUM), new Float32Array(QUANTUM)]];
  for (let i = 0; i < (ms * RATE) / 1000 / QUANTUM; i++) {
    p.process([], out);
  }
  const stats = p.port.posted.filter((m) => (m as { type: string }).type === 'stats');
  const last = stats.at(-1) as
    | { stats: Record<number, { queuedMs: number; droppedMs: number }> }
    | undefined;
  return last?.stats[1] ?? { queuedMs: -1, droppedMs: -1 };
}

describe('playback jitter buffer', () => {
  it('drains the excess a burst left below the maximum', () => {
    const p = new Ctor();
    p.port.onmessage?.({ data: { type: 'config', targetMs: 60, maxMs: 300 } });
    // A 240 ms burst (below the 300 ms maximum, so nothing is cut on arrival).
    feed(p, 240);
    // Then real-time arrivals: 80 ms in, 80 ms out.
    let s = { queuedMs: -1, droppedMs: -1 };
    for (let i = 0; i < 40; i++) {
      feed(p, 80);
      s = play(p, 80);
    }
    // Without the drain the queue would swing between 160 and 240 ms for the rest of the call.
    expect(s.queuedMs).toBeGreaterThan(0);
    expect(s.queuedMs).toBeLessThan(60 + 80 + 25);
    expect(s.droppedMs).toBeGreaterThan(100);
  });

  it('leaves a queue that dips to the target (jitter it needs) alone', () => {
    const p = new Ctor();
    p.port.onmessage?.({ data: { type: 'config', targetMs: 60, maxMs: 300 } });
    feed(p, 60);
    // 80 ms arrive every 80 ms: the queue swings between 60 and 140 ms; its minimum is the
    // target, so nothing is dropped.
    let s = { queuedMs: -1, droppedMs: -1 };
    for (let i = 0; i < 40; i++) {
      feed(p, 80);
      s = play(p, 80);
    }
    expect(s.queuedMs).toBeGreaterThanOrEqual(55);
    expect(s.droppedMs).toBe(0);
  });
});
