"""The pages' style sheet and the overview's script, served inline (no outside assets).

The script listens to ``/api/stream`` (server-sent events) and redraws the overview from
each ``overview`` message; the throughput chart is an SVG it builds itself.
"""

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;color:#fff;padding:10px 20px}nav a{color:#cfe0ff;margin-left:16px}
main{padding:8px 20px 40px}h1{font-size:22px}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
td,th{padding:3px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{background:#fff;padding:8px 12px;
border-radius:6px;min-width:90px;box-shadow:0 1px 2px #0001}.card b{display:block;font-size:20px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:20px}.pill{font-size:12px;padding:2px 8px;
border-radius:10px;background:#ddd;vertical-align:middle}.pill.connected{background:#c6f6d5}
.pill.silent{background:#fed7d7}tr.sig-error td,tr.sig-timeout td,tr.sig-interrupted td,
tr.sig-expired td{background:#fff5f5}tr.life th{background:#eef2ff}pre{white-space:pre-wrap}
svg text{font-size:10px;fill:#555}
"""

OVERVIEW_SCRIPT = r"""
const $ = id => document.getElementById(id);
const esc = s => String(s ?? '').replace(/[&<>"']/g,
  c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const when = ts => ts ? new Date(ts * 1000).toLocaleTimeString() : '-';
const link = (id, name) => `<a href="/tasks/${encodeURIComponent(id)}">${esc(name)}</a> ` +
  `<code>${esc(String(id).slice(0, 8))}</code>`;
function table(el, head, rows) {
  $(el).innerHTML = '<tr>' + head.map(h => `<th>${h}</th>`).join('') + '</tr>' +
    (rows.length ? rows.map(r => '<tr>' + r.map(c => `<td>${c}</td>`).join('') + '</tr>')
      .join('') : `<tr><td colspan="${head.length}">none</td></tr>`);
}
function chart(points) {
  const w = 720, h = 140, pad = 24, max = Math.max(1, ...points.map(p => p.count));
  const bw = (w - pad) / Math.max(1, points.length);
  let bars = '';
  points.forEach((p, i) => {
    const x = pad + i * bw, ok = (p.count - p.failed) / max * (h - 20),
          bad = p.failed / max * (h - 20);
    bars += `<rect class="bar" x="${x}" y="${h - 14 - ok - bad}" width="${bw - 1}" ` +
      `height="${ok}" fill="#4c7bd9"><title>${when(p.minute)}: ${p.count}</title></rect>` +
      `<rect x="${x}" y="${h - 14 - bad}" width="${bw - 1}" height="${bad}" fill="#e05252"/>`;
  });
  return `<svg id="throughput" viewBox="0 0 ${w} ${h}" width="100%" height="${h}" ` +
    `role="img" aria-label="events per minute"><text x="0" y="10">${max}</text>` +
    `<text x="0" y="${h - 16}">0</text>${bars}<text x="${pad}" y="${h - 2}">` +
    `${when(points.length ? points[0].minute : 0)}</text><text x="${w - 60}" y="${h - 2}">` +
    `now</text></svg>`;
}
function render(o) {
  $('broker').textContent = 'broker ' + o.broker;
  $('broker').className = 'pill ' + o.broker;
  const cards = Object.entries(o.totals).sort().map(([s, n]) =>
    `<div class="card" data-signal="${esc(s)}">${esc(s)}<b>${n}</b></div>`);
  cards.push(`<div class="card">in flight<b id="inflight-total">${o.inflight_count}</b></div>`);
  cards.push(`<div class="card">lost<b id="lost">${o.lost}</b></div>`);
  if (o.queue) ['pending', 'scheduled', 'in_flight'].forEach(k =>
    cards.push(`<div class="card">queue ${k.replace('_', ' ')}<b>${o.queue[k]}</b></div>`));
  $('cards').innerHTML = cards.join('');
  $('chart').innerHTML = chart(o.throughput);
  table('consumers', ['host', 'pid', 'queue', 'workers', 'since'], o.consumers.map(c =>
    [esc(c.host), esc(c.pid), esc(c.queue), esc(c.workers), when(c.started)]));
  $('inflight-count').textContent = '(' + o.inflight_count + ')';
  table('inflight', ['task', 'state', 'age'], o.inflight.map(t =>
    [link(t.task_id, t.name), esc(t.last_signal), t.age.toFixed(1) + ' s']));
  table('failures', ['when', 'task', 'signal', 'error'], o.failures.map(f =>
    [when(f.last_ts), link(f.task_id, f.name), esc(f.last_signal), esc(f.error)]));
  table('incidents', ['when', 'what', 'events'], o.incidents.map(i =>
    [when(i.ts), esc(i.kind), i.count == null ? 'unknown' : esc(i.count)]));
  const stats = o.broker_stats || {};
  table('broker-stats', ['stat', 'value'], ['received', 'published', 'malformed',
    'publisher_drops', 'oversized', 'last_seq', 'ring_first_seq', 'subscribers']
    .filter(k => k in stats).map(k => [k, esc(stats[k])]));
  table('recent', ['time', 'signal', 'task', 'source', 'retries', 'error'], o.recent.map(e =>
    [when(e.ts), esc(e.signal), link(e.task_id, e.task_name), esc(e.source),
     esc(e.retries), esc(e.error)]));
}
fetch('/api/overview').then(r => r.json()).then(render);
const stream = new EventSource('/api/stream');
stream.addEventListener('overview', m => render(JSON.parse(m.data)));
"""
