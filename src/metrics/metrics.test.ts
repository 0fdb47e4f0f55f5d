import { describe, expect, it } from 'vitest';
import { METRIC_DOCS, RelayMetrics, renderMetricsDocs } from './index.js';

describe('RelayMetrics', () => {
  it('two instances do not collide and expose every documented metric', async () => {
    const a = new RelayMetrics();
    const b = new RelayMetrics();
    a.packetsForwarded.inc(3);
    a.dropped.labels('unbound').inc();
    const textA = (await a.scrape()).body;
    const textB = (await b.scrape()).body;
    expect(textA).toContain('wzp_relay_packets_forwarded_total 3');
    expect(textA).toContain('wzp_relay_datagrams_dropped_total{reason="unbound"} 1');
    expect(textB).toContain('wzp_relay_packets_forwarded_total 0');
    for (const m of METRIC_DOCS) {
      expect(textA).toContain(`# HELP ${m.name} `);
    }
  });

  it('runs scrape hooks before exposition', async () => {
    const m = new RelayMetrics();
    let n = 0;
    m.onScrape(() => {
      n++;
      m.activeSessions.set(n);
    });
    expect((await m.scrape()).body).toContain('wzp_relay_active_sessions 1');
    expect((await m.scrape()).body).toContain('wzp_relay_active_sessions 2');
    expect(renderMetricsDocs()).toContain('`wzp_relay_fanout_recipients` | histogram');
  });
});
