// chart: a station's readings over 24 h (raw, with QC flags) or 7 days (hourly mean and max),
// with the station's thresholds drawn as lines. Loaded by app.js on first use, as is uPlot: the
// first screen does not need them. The language helpers come from app.js (renderChart's i18n).
let t, fmtNumber, fmtAxis, fmtTime, LEVELS;

const UPLOT_JS = '/assets/uplot-1.6.32.min.js';
const UPLOT_CSS = '/assets/uplot-1.6.32.min.css';
const THRESHOLD_COLOURS = { waspada: '#9a7700', siaga: '#c25400', awas: '#b71c1c' };
const THRESHOLD_LEVEL = { waspada: 1, siaga: 2, awas: 3 };

let loading = null;
function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = UPLOT_CSS;
      document.head.append(css);
      const s = document.createElement('script');
      s.src = UPLOT_JS;
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => { loading = null; s.remove(); reject(new Error('uPlot did not load')); };
      document.head.append(s);
    });
  }
  return loading;
}

const sec = (iso) => Math.floor(new Date(iso).getTime() / 1000);

// Turns API points into uPlot columns: [x, value, (max), suspect marks, bad marks].
function columns(points, raw) {
  const x = [], v = [], mx = [], sus = [], bad = [];
  let nSus = 0, nBad = 0;
  for (const p of points) {
    x.push(sec(p.t));
    if (raw) {
      const q = p.qc || 'good';
      v.push(q === 'bad' ? null : p.v); // a bad reading is shown as a mark, never as the level
      sus.push(q === 'suspect' ? p.v : null);
      bad.push(q === 'bad' ? p.v : null);
      if (q === 'suspect') nSus++;
      if (q === 'bad') nBad++;
    } else {
      v.push(p.n > 0 ? p.mean : null);
      mx.push(p.n > 0 ? p.max : null);
      sus.push(null);
      bad.push(p.n_bad > 0 ? (p.n > 0 ? p.max : 0) : null);
      if (p.n_bad > 0) nBad += p.n_bad;
    }
  }
  return { data: raw ? [x, v, sus, bad] : [x, v, mx, sus, bad], nSus, nBad, n: points.length };
}

function thresholdPlugin(thresholds, unit) {
  return {
    hooks: {
      draw: [(u) => {
        if (!thresholds) return;
        const { ctx } = u;
        const { left, width, top, height } = u.bbox;
        ctx.save();
        ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
        ctx.textAlign = 'left';
        ctx.textBaseline = 'bottom';
        for (const [name, val] of Object.entries(thresholds)) {
          if (val == null) continue;
          const y = Math.round(u.valToPos(val, 'y', true));
          if (y < top || y > top + height) continue;
          ctx.strokeStyle = THRESHOLD_COLOURS[name] || '#555';
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(left, y);
          ctx.lineTo(left + width, y);
          ctx.stroke();
          const lv = LEVELS[THRESHOLD_LEVEL[name]];
          const text = `${lv.status} · ${lv.siaga} ${fmtNumber(val)} ${unit}`;
          const x = left + 6 * devicePixelRatio;
          const tw = ctx.measureText(text).width;
          ctx.fillStyle = 'rgba(255,255,255,.85)';
          ctx.fillRect(x - 2, y - 15 * devicePixelRatio, tw + 4, 13 * devicePixelRatio);
          ctx.fillStyle = THRESHOLD_COLOURS[name] || '#555';
          ctx.fillText(text, x, y - 4 * devicePixelRatio);
        }
        ctx.restore();
      }],
    },
  };
}

// Draws the chart into `el`; returns {destroy(), addPoint(t, v, qc)}.
export async function renderChart(el, { code, sensor, unit, thresholds, range, fetchJson, i18n }) {
  ({ t, fmtNumber, fmtAxis, fmtTime, LEVELS } = i18n);
  el.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: t('chart_loading') }));
  const now = Date.now();
  const raw = range === '24h';
  const from = new Date(now - (raw ? 86400e3 : 7 * 86400e3)).toISOString();
  const to = new Date(now + 300e3).toISOString();
  const [uPlot, res] = await Promise.all([
    loadUPlot(),
    fetchJson(`/api/v1/stations/${encodeURIComponent(code)}/readings?sensor=${encodeURIComponent(sensor)}`
      + `&step=${raw ? 'raw' : '1h'}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`),
  ]);
  const cols = columns(res.points || [], raw);
  const rangeText = t(raw ? 'chart_24h' : 'chart_7d');
  const wrap = document.createElement('div');
  wrap.className = 'chart';
  wrap.setAttribute('role', 'img');
  wrap.setAttribute('aria-label', t('chart_label', { sensor, range: rangeText, n: cols.n, s: cols.nSus, b: cols.nBad }));
  const summary = document.createElement('p');
  summary.className = 'qc-summary' + (cols.nSus || cols.nBad ? ' flagged' : '');
  summary.dataset.suspect = cols.nSus;
  summary.dataset.bad = cols.nBad;
  summary.textContent = t('qc_summary', { range: rangeText, s: cols.nSus, b: cols.nBad });
  el.replaceChildren(wrap, summary);
  if (!cols.n) {
    wrap.append(Object.assign(document.createElement('p'), { className: 'muted', textContent: t('chart_empty') }));
  }
  const th = thresholds || null;
  const thVals = th ? Object.values(th).filter((x) => x != null) : [];
  const mark = (stroke, fill, size) => ({ show: true, size, stroke, fill, width: 2 });
  const series = [
    { label: t('col_time'), value: (u, ts) => (ts == null ? '—' : fmtTime(new Date(ts * 1000), { date: true })) },
    { label: raw ? `${sensor} (${unit})` : `${t('mean')} (${unit})`, stroke: '#1557a0', width: 2, spanGaps: false, points: { show: raw && cols.n < 200 } },
  ];
  if (!raw) series.push({ label: `${t('max')} (${unit})`, stroke: '#1557a0', width: 1, dash: [4, 3], points: { show: false } });
  series.push(
    { label: t('qc_suspect'), stroke: 'transparent', paths: () => null, points: mark('#8a5a00', '#ffb300', 9) },
    { label: t('qc_bad'), stroke: 'transparent', paths: () => null, points: mark('#7f0000', '#e53935', 10) },
  );
  const height = el.clientHeight > 150 ? el.clientHeight - 40 : 220;
  const opts = {
    width: Math.max(240, el.clientWidth || 400),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Asia/Makassar'),
    series,
    scales: {
      x: { time: true },
      y: {
        range: (u, min, max) => {
          const lo = Math.min(min ?? 0, ...thVals, 0);
          const hi = Math.max(max ?? 1, ...thVals.map((v) => v * 1.08));
          return [lo, hi > lo ? hi : lo + 1];
        },
      },
    },
    axes: [{ stroke: '#333', grid: { stroke: '#e3e3e3' },
      values: (u, splits, ai, space, incr) => splits.map((ts, i) => {
        const d = new Date(ts * 1000);
        const prev = i > 0 ? new Date(splits[i - 1] * 1000) : null;
        return fmtAxis(d, incr >= 86400 || i === 0 || (prev && fmtAxis(prev, true).split(' ')[0] !== fmtAxis(d, true).split(' ')[0]));
      }) }, { stroke: '#333', grid: { stroke: '#e3e3e3' }, size: 56 }],
    legend: { live: true },
    plugins: [thresholdPlugin(th, unit)],
    hooks: { draw: [() => { wrap.dataset.drawn = '1'; }] }, // drawn: what a screenshot may wait for
  };
  const u = new uPlot(opts, cols.data, wrap);
  const ro = new ResizeObserver(() => u.setSize({ width: Math.max(240, wrap.clientWidth), height }));
  ro.observe(wrap);
  return {
    destroy() { ro.disconnect(); u.destroy(); },
    addPoint(iso, v, qc) {
      if (!raw) return;
      const d = u.data.map((c) => Array.from(c));
      d[0].push(sec(iso));
      d[1].push(qc === 'bad' ? null : v);
      d[2].push(qc === 'suspect' ? v : null);
      d[3].push(qc === 'bad' ? v : null);
      u.setData(d);
    },
  };
}
