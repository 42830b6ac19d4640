// app: the COC screen. Signs in with the session cookie, loads stations, alerts and boundaries,
// follows the live event stream (and says so loudly when it is down), and lets people on duty
// acknowledge and shelve alerts. No framework: a few render functions over one state object.
// One file on purpose: on slow 4G every request of the first screen costs a round trip of
// 0.5 s or more and a browser opens only six connections; the chart (chart.js) loads later.

// ---- i18n: Bahasa Indonesia by default, English on request; times always in WITA (UTC+8).
// Level names are not translated: "Siaga 2" and "Siaga" are what people hear on the radio.

const dict = {
  id: {
    title: 'Pusat Operasi', skip_alerts: 'Lewati ke panel peringatan',
    connecting: 'Menyambung…', live: 'Langsung', offline: 'Terputus',
    conn_lost: 'Koneksi terputus',
    conn_detail: 'Data di layar mungkin usang — terakhir diperbarui {t}. Menyambung ulang…',
    conn_detail_never: 'Belum ada data langsung. Menyambung ulang…',
    sound_on: 'Suara: aktif', sound_off: 'Suara: mati', sound_blocked: 'Klik di mana saja untuk mengaktifkan suara',
    logout: 'Keluar', signin: 'Masuk', signin_hint: 'Pusat Operasi Kabupaten — khusus petugas.',
    username: 'Nama pengguna', password: 'Kata sandi',
    login_failed: 'Nama pengguna atau kata sandi salah.', login_throttled: 'Terlalu banyak percobaan. Coba lagi dalam {s} detik.',
    map: 'Peta', map_label: 'Peta stasiun, batas kabupaten dan kecamatan', legend: 'Legenda',
    alerts: 'Peringatan', open_alerts: 'Terbuka', history: 'Riwayat', alert_views: 'Tampilan peringatan',
    station: 'Stasiun', stations: 'Daftar stasiun', pick_station: 'Pilih stasiun di peta atau daftar.',
    col_station: 'Stasiun', col_level: 'Status', col_value: 'Nilai', col_age: 'Umur data',
    unknown: 'Tidak diketahui', no_data: 'tidak ada data', stale: 'data terputus',
    no_open_alerts: 'Tidak ada peringatan terbuka.', no_history: 'Belum ada riwayat.',
    awas_title: 'AWAS', awas_open: 'Buka peringatan', awas_silence: 'Matikan suara',
    awas_text: '{station}: {rule} — nilai {value}',
    st_active_unack: 'Aktif, belum dikonfirmasi', st_active_ack: 'Aktif, dikonfirmasi',
    st_cleared_unack: 'Reda, belum dikonfirmasi', st_closed: 'Selesai',
    escalation: 'Eskalasi tingkat {n}', shelved_until: 'Ditunda sampai {t}',
    raised: 'Mulai {t}', value: 'Nilai', acked_by: 'Dikonfirmasi oleh {who}, {t}',
    ack: 'Konfirmasi', shelve: 'Tunda', show_history: 'Riwayat', hide_history: 'Sembunyikan riwayat',
    note: 'Catatan', reason: 'Alasan', minutes: 'Menit', send: 'Kirim', cancel: 'Batal',
    ack_done: 'Peringatan dikonfirmasi.', shelve_done: 'Peringatan ditunda.',
    action_failed: 'Gagal: {msg}',
    rule_level: 'Tinggi muka air', rule_rate_of_rise: 'Kenaikan cepat', rule_sudden_fall: 'Penurunan mendadak',
    rule_rain_1h: 'Hujan 1 jam', rule_rain_24h: 'Hujan 24 jam', rule_silent: 'Stasiun diam / macet',
    operator_only: 'khusus operator',
    act_raised: 'muncul', act_level: 'level berubah', act_cleared: 'reda', act_closed: 'ditutup',
    act_ack: 'dikonfirmasi', act_shelve: 'ditunda', act_escalate: 'eskalasi', act_unshelve: 'penundaan berakhir',
    new_alert: 'Peringatan baru: {level} di {station}',
    current: 'Nilai terkini', age: 'Umur data', ago: '{d} lalu', thresholds: 'Ambang batas',
    river: 'Sungai', region: 'Wilayah', kind: 'Jenis', state: 'Keadaan', qc: 'Mutu data',
    qc_good: 'baik', qc_suspect: 'curiga', qc_bad: 'buruk',
    kind_water_level: 'Pos duga air', kind_rain: 'Penakar hujan', kind_weather: 'Cuaca', kind_waste_bin: 'Tempat sampah',
    state_ok: 'melapor', state_unknown: 'diam (tidak diketahui)',
    chart_24h: '24 jam', chart_7d: '7 hari', chart_loading: 'Memuat grafik…', chart_empty: 'Tidak ada data pada rentang ini.',
    chart_label: 'Grafik {sensor} {range}: {n} titik, {s} curiga, {b} buruk',
    qc_summary: 'Mutu data {range}: {s} titik curiga, {b} titik buruk',
    chart_range: 'Rentang grafik', max: 'maks', mean: 'rata-rata', close: 'Tutup',
    demo: 'DEMO', level_of: 'Level stasiun', markers_label: '{name}: {level}',
    secs: '{n} dtk', mins: '{n} mnt', hours: '{n} jam', days: '{n} hari',
    load_failed: 'Gagal memuat data: {msg}', loading: 'Memuat…', col_time: 'Waktu',
    river_point: 'Titik acuan sungai', river_legend: 'Titik acuan sungai (perkiraan)',
    river_approx: 'Lokasi perkiraan, bukan alur sungai.', river_where: 'Letak',
    river_description: 'Keterangan', river_confidence: 'Keyakinan', river_basis: 'Dasar', river_source: 'Sumber',
    'conf_low': 'rendah', 'conf_low-medium': 'rendah–sedang', 'conf_medium': 'sedang', 'conf_high': 'tinggi',
  },
  en: {
    title: 'Operations Center', skip_alerts: 'Skip to the alerts panel',
    connecting: 'Connecting…', live: 'Live', offline: 'Disconnected',
    conn_lost: 'Connection lost',
    conn_detail: 'What you see may be stale — last updated {t}. Reconnecting…',
    conn_detail_never: 'No live data yet. Reconnecting…',
    sound_on: 'Sound: on', sound_off: 'Sound: off', sound_blocked: 'Click anywhere to enable sound',
    logout: 'Sign out', signin: 'Sign in', signin_hint: 'Regency Operations Center — staff only.',
    username: 'Username', password: 'Password',
    login_failed: 'Wrong username or password.', login_throttled: 'Too many attempts. Try again in {s} seconds.',
    map: 'Map', map_label: 'Map of stations, regency and district boundaries', legend: 'Legend',
    alerts: 'Alerts', open_alerts: 'Open', history: 'History', alert_views: 'Alert views',
    station: 'Station', stations: 'Stations', pick_station: 'Pick a station on the map or in the list.',
    col_station: 'Station', col_level: 'Status', col_value: 'Value', col_age: 'Data age',
    unknown: 'Unknown', no_data: 'no data', stale: 'data lost',
    no_open_alerts: 'No open alerts.', no_history: 'No history yet.',
    awas_title: 'AWAS', awas_open: 'Open alert', awas_silence: 'Silence',
    awas_text: '{station}: {rule} — value {value}',
    st_active_unack: 'Active, unacknowledged', st_active_ack: 'Active, acknowledged',
    st_cleared_unack: 'Cleared, unacknowledged', st_closed: 'Closed',
    escalation: 'Escalated to tier {n}', shelved_until: 'Shelved until {t}',
    raised: 'Since {t}', value: 'Value', acked_by: 'Acknowledged by {who}, {t}',
    ack: 'Acknowledge', shelve: 'Shelve', show_history: 'History', hide_history: 'Hide history',
    note: 'Note', reason: 'Reason', minutes: 'Minutes', send: 'Send', cancel: 'Cancel',
    ack_done: 'Alert acknowledged.', shelve_done: 'Alert shelved.',
    action_failed: 'Failed: {msg}',
    rule_level: 'Water level', rule_rate_of_rise: 'Fast rise', rule_sudden_fall: 'Sudden fall',
    rule_rain_1h: 'Rain, 1 hour', rule_rain_24h: 'Rain, 24 hours', rule_silent: 'Station silent / stuck',
    operator_only: 'operators only',
    act_raised: 'raised', act_level: 'level changed', act_cleared: 'cleared', act_closed: 'closed',
    act_ack: 'acknowledged', act_shelve: 'shelved', act_escalate: 'escalated', act_unshelve: 'unshelved',
    new_alert: 'New alert: {level} at {station}',
    current: 'Current value', age: 'Data age', ago: '{d} ago', thresholds: 'Thresholds',
    river: 'River', region: 'Region', kind: 'Kind', state: 'State', qc: 'Data quality',
    qc_good: 'good', qc_suspect: 'suspect', qc_bad: 'bad',
    kind_water_level: 'River gauge', kind_rain: 'Rain gauge', kind_weather: 'Weather', kind_waste_bin: 'Waste bin',
    state_ok: 'reporting', state_unknown: 'silent (unknown)',
    chart_24h: '24 hours', chart_7d: '7 days', chart_loading: 'Loading chart…', chart_empty: 'No data in this range.',
    chart_label: 'Chart of {sensor} over {range}: {n} points, {s} suspect, {b} bad',
    qc_summary: 'Data quality over {range}: {s} suspect points, {b} bad points',
    chart_range: 'Chart range', max: 'max', mean: 'mean', close: 'Close',
    demo: 'DEMO', level_of: 'Station level', markers_label: '{name}: {level}',
    secs: '{n} s', mins: '{n} min', hours: '{n} h', days: '{n} d',
    load_failed: 'Could not load data: {msg}', loading: 'Loading…', col_time: 'Time',
    river_point: 'River reference point', river_legend: 'River reference point (approximate)',
    river_approx: 'Approximate location, not the river channel.', river_where: 'Where',
    river_description: 'Description', river_confidence: 'Confidence', river_basis: 'Basis', river_source: 'Source',
    'conf_low': 'low', 'conf_low-medium': 'low–medium', 'conf_medium': 'medium', 'conf_high': 'high',
  },
};

// The four levels (DOMAIN.md §2): ordinal, status word, river-post name, colour.
const LEVELS = [
  { status: 'Normal', siaga: 'Siaga 4', colour: 'green' },
  { status: 'Waspada', siaga: 'Siaga 3', colour: 'yellow' },
  { status: 'Siaga', siaga: 'Siaga 2', colour: 'orange' },
  { status: 'Awas', siaga: 'Siaga 1', colour: 'red' },
];

let lang = 'id';
try { if (localStorage.getItem('sinergi.lang') === 'en') lang = 'en'; } catch { /* private mode */ }

function getLang() { return lang; }

function setLang(l) {
  lang = l === 'en' ? 'en' : 'id';
  try { localStorage.setItem('sinergi.lang', lang); } catch { /* private mode */ }
  document.documentElement.lang = lang;
}

// t('key', {name: value}): the text in the current language, {name} filled in.
function t(key, vars) {
  let s = dict[lang][key] ?? dict.id[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// "Siaga · Siaga 2" (both names, DOMAIN.md §2); unknown (null) in words.
function levelName(level) {
  if (level == null || !LEVELS[level]) return t('unknown');
  const l = LEVELS[level];
  return `${l.status} · ${l.siaga}`;
}

// Applies data-i18n keys to the static page.
function translatePage(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  document.documentElement.lang = lang;
}

const fmtCache = new Map();
function fmt(opts) {
  const k = lang + JSON.stringify(opts);
  if (!fmtCache.has(k)) {
    fmtCache.set(k, new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'id-ID',
      { timeZone: 'Asia/Makassar', hourCycle: 'h23', ...opts }));
  }
  return fmtCache.get(k);
}

// "13 Jul 2020 21.00 WITA" (or only the time for today).
function fmtTime(iso, { seconds = false, date = 'auto' } = {}) {
  if (!iso) return '—';
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const time = fmt({ hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}) }).format(d);
  const day = fmt({ day: 'numeric', month: 'short', year: 'numeric' });
  const showDate = date === true || (date === 'auto' && day.format(d) !== day.format(new Date()));
  return `${showDate ? day.format(d) + ' ' : ''}${time} WITA`;
}

// Short axis labels in WITA for charts.
function fmtAxis(d, withDate) {
  return withDate ? fmt({ day: 'numeric', month: 'short' }).format(d) + ' ' + fmt({ hour: '2-digit', minute: '2-digit' }).format(d)
    : fmt({ hour: '2-digit', minute: '2-digit' }).format(d);
}

// "3 mnt" / "2 jam"
function fmtDuration(sec) {
  if (sec == null || !Number.isFinite(sec)) return '—';
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return t('secs', { n: sec });
  if (sec < 3600) return t('mins', { n: Math.floor(sec / 60) });
  if (sec < 86400) return t('hours', { n: Math.floor(sec / 3600) });
  return t('days', { n: Math.floor(sec / 86400) });
}

function fmtNumber(v, digits = 2) {
  if (v == null || !Number.isFinite(v)) return '—';
  return new Intl.NumberFormat(lang === 'en' ? 'en-GB' : 'id-ID', { maximumFractionDigits: digits }).format(v);
}

// ---- map: the Leaflet map of the regency: regency and kecamatan boundaries (GeoJSON from the API),
// tiles only when the tile_url setting names a server, one keyboard-focusable marker per
// station coloured by its level, labelled with both level names, and the rivers' reference
// points (/api/v1/rivers) as blue diamonds under the stations, which often stand on them.

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

// Where a river point lies, as people there say it: "Kel. Bone Tua, Kec. Masamba".
function riverPlace(p) {
  if (!p.region) return p.description;
  const desa = `${p.region.level === 'kelurahan' ? 'Kel.' : 'Desa'} ${p.region.name}`;
  return p.kecamatan ? `${desa}, Kec. ${p.kecamatan.name}` : desa;
}
const confidenceName = (c) => (dict.id['conf_' + c] ? t('conf_' + c) : c);

// "DEMO Pos Duga Air Sungai Masamba (Kel. Bone)" -> "Sungai Masamba"
function shortName(name) {
  return String(name || '').replace(/^DEMO\s+/, '').replace(/\s*\(.*\)\s*$/, '')
    .replace(/^Pos Duga Air\s+/i, '').trim();
}

class StationMap {
  constructor(el, { onSelect }) {
    const L = window.L;
    this.L = L;
    this.onSelect = onSelect;
    this.markers = new Map(); // code -> marker
    this.fitted = false;
    this.map = L.map(el, { zoomSnap: 0.25, keyboard: true, worldCopyJump: false, minZoom: 6 });
    this.map.attributionControl.setPrefix('Leaflet');
    el.classList.add('no-tiles');
    this.map.setView([-2.45, 120.2], 9);
    this.map.on('dragstart', () => { this.userMoved = true; });
    this.map.on('zoomstart', () => { if (!this.fitting) this.userMoved = true; });
    this.map.on('zoomend moveend', () => this.declutter());
    let resizeTimer = null;
    this.map.on('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (!this.userMoved && this.regionBounds) this.fit(this.regionBounds); this.declutter(); }, 150);
    });
    this.boundaries = L.layerGroup().addTo(this.map);
    this.map.createPane('kec-names').style.zIndex = 450; // under the markers and their labels
    this.markerLayer = L.layerGroup().addTo(this.map);
    // River points: drawn under the stations (a gauge usually stands on its river's point) and,
    // their pane being created last, reached by Tab after them.
    this.map.createPane('rivers').style.zIndex = 590;
    this.riverLayer = L.layerGroup().addTo(this.map);
    this.rivers = [];
    const zoomClass = () => el.classList.toggle('zoomed-out', this.map.getZoom() < 9);
    this.map.on('zoomend', zoomClass);
    zoomClass();
  }

  // GeoJSON: the regency (Feature) and its kecamatan (FeatureCollection).
  setBoundaries(regency, kecamatan) {
    const L = this.L;
    this.boundaries.clearLayers();
    if (kecamatan) {
      L.geoJSON(kecamatan, {
        style: { color: '#5b6b78', weight: 1, fillColor: '#f4f1e8', fillOpacity: 0.9 },
        interactive: false,
        onEachFeature: (f, layer) => {
          const c = f.properties?.centroid;
          if (c) {
            L.tooltip({ permanent: true, direction: 'center', className: 'kec-label', interactive: false, pane: 'kec-names' })
              .setLatLng([c.lat, c.lon]).setContent(esc(f.properties.name)).addTo(this.boundaries);
          }
        },
      }).addTo(this.boundaries);
    }
    if (regency) {
      const outline = L.geoJSON(regency, { style: { color: '#1f2d3a', weight: 3, fill: false }, interactive: false });
      outline.addTo(this.boundaries);
      this.regionBounds = outline.getBounds();
      if (!this.userMoved) this.fit(this.regionBounds);
      this.fitted = true;
      this.declutter();
    }
  }

  // stations: [{code, name, lat, lon, demo, ...}], level(code) -> 0..3 | null, stale(code) -> bool
  setStations(stations, levelOf, staleOf) {
    const L = this.L;
    const seen = new Set();
    for (const st of stations) {
      if (st.lat == null || st.lon == null) continue;
      seen.add(st.code);
      const level = levelOf(st.code);
      const stale = staleOf(st.code);
      const key = `${level}|${stale}|${st.name}|${t('unknown')}`;
      let m = this.markers.get(st.code);
      if (!m) {
        m = L.marker([st.lat, st.lon], { keyboard: true, riseOnHover: true, title: st.name,
          icon: this.icon(st, level, stale) });
        m.on('click', () => this.onSelect(st.code));
        m.on('add', () => this.decorate(m));
        m.addTo(this.markerLayer);
        this.markers.set(st.code, m);
      }
      m.station = st;
      m.level = level;
      m.stale = stale;
      if (m.key !== key) {
        m.key = key;
        const hadFocus = m.getElement() && m.getElement() === document.activeElement;
        m.setIcon(this.icon(st, level, stale));
        this.decorate(m);
        if (hadFocus) m.getElement()?.focus();
      }
    }
    for (const [code, m] of this.markers) {
      if (!seen.has(code)) { m.remove(); this.markers.delete(code); }
    }
    if (!this.fitted && this.markers.size) {
      const b = L.latLngBounds([...this.markers.values()].map((m) => m.getLatLng()));
      this.fit(b.pad(0.5), { maxZoom: 11 });
    }
    this.declutter();
  }

  // points: [{id, river, description, lat, lon, confidence, region, kecamatan, ...}] of /api/v1/rivers
  setRivers(points) {
    const L = this.L;
    this.riverLayer.clearLayers();
    this.rivers = points.filter((p) => p.lat != null && p.lon != null).map((p) => {
      const m = L.marker([p.lat, p.lon], { pane: 'rivers', keyboard: true, icon: this.riverIcon(p) });
      m.point = p;
      m.bindPopup(() => this.riverPopup(p), { maxWidth: 320, autoPanPadding: [12, 12] });
      m.on('add', () => this.decorateRiver(m));
      m.addTo(this.riverLayer);
      return m;
    });
    this.declutter();
  }

  // Language changed: labels and titles again (a popup is built when it opens).
  relabelRivers() {
    for (const m of this.rivers) { m.setIcon(this.riverIcon(m.point)); this.decorateRiver(m); }
    this.declutter();
  }

  riverIcon(p) {
    return this.L.divIcon({
      className: 'rv-marker',
      // no number and no level colour: nothing to mistake for a station
      html: '<span class="rv-dot" aria-hidden="true"></span>'
        + `<span class="rv-label"><span class="vh">${esc(t('river_point'))}: </span><b>${esc(p.river)}</b> · ${esc(riverPlace(p))}</span>`,
      iconSize: [22, 22],
      iconAnchor: [11, 11],
    });
  }

  decorateRiver(m) {
    const el = m.getElement();
    if (!el) return;
    el.setAttribute('title', `${t('river_point')}: ${m.point.river} · ${riverPlace(m.point)}`);
    el.dataset.riverPoint = String(m.point.id);
    el.dataset.river = m.point.river;
    if (!el.sinergiKeys) { // role=button: Space opens the details as Enter (Leaflet) and a click do
      el.sinergiKeys = true;
      el.addEventListener('keydown', (e) => {
        if (e.key === ' ') { e.preventDefault(); e.stopPropagation(); m.openPopup(); }
        // Leaflet closes a popup on Escape only while the map itself has the focus
        if (e.key === 'Escape' && m.isPopupOpen()) { e.stopPropagation(); m.closePopup(); }
      });
    }
  }

  riverPopup(p) {
    const row = (k, v) => (v ? [h('dt', {}, k), h('dd', {}, v)] : []);
    const conf = confidenceName(p.confidence) + (p.confidence_note ? ` (${p.confidence_note})` : '');
    return h('div', { class: 'rv-popup', dataset: { riverPoint: String(p.id) } },
      h('p', { class: 'rv-kind' }, t('river_point')),
      h('h3', {}, p.river),
      h('p', {}, riverPlace(p)),
      h('p', { class: 'rv-approx' }, t('river_approx')),
      h('dl', {}, row(t('river_description'), p.description), row(t('river_confidence'), conf),
        row(t('river_basis'), p.basis), row(t('river_source'), p.source),
        row(t('river_where'), `${fmtNumber(p.lat, 5)}, ${fmtNumber(p.lon, 5)}`)));
  }

  // Programmatic fits do not count as the user moving the map.
  fit(bounds, opts) {
    this.fitting = true;
    this.map.fitBounds(bounds, { padding: [12, 12], animate: false, ...opts });
    this.fitting = false;
  }

  // Markers closer than a finger's width fan out around their place (the regency's gauges sit
  // kilometres apart, a few pixels at the regency's zoom; two share a site in Masamba), so each
  // stays a 26 px target. Then labels that would overlap move to another side, or hide (the
  // name stays in the marker's accessible name and title).
  declutter() {
    const MIN = 32;
    const ring = [[0, 0]];
    for (const r of [MIN, 2 * MIN]) for (let a = 0; a < 8; a++) ring.push([Math.round(r * Math.cos(a * Math.PI / 4 + Math.PI / 2)), Math.round(r * Math.sin(a * Math.PI / 4 + Math.PI / 2))]);
    const spots = [];
    const ms = [...this.markers.values()].filter((m) => m.getElement())
      .sort((a, b) => b.getLatLng().lat - a.getLatLng().lat || a.station.code.localeCompare(b.station.code));
    for (const m of ms) {
      const p = this.map.latLngToContainerPoint(m.getLatLng());
      const off = ring.find(([dx, dy]) => spots.every((q) => Math.hypot(p.x + dx - q.x, p.y + dy - q.y) >= MIN)) || [0, 0];
      spots.push({ x: p.x + off[0], y: p.y + off[1] });
      const el = m.getElement();
      el.style.marginLeft = `${off[0] - 13}px`;
      el.style.marginTop = `${off[1] - 13}px`;
      el.classList.toggle('displaced', off[0] !== 0 || off[1] !== 0);
    }
    const placed = [];
    const sides = ['pos-r', 'pos-l', 'pos-b', 'pos-t'];
    // the most urgent station gets its label first
    const items = [...this.markers.values()].sort((a, b) => (b.level ?? -1) - (a.level ?? -1)
      || a.getLatLng().lat - b.getLatLng().lat).map((m) => m.getElement()).filter(Boolean);
    const dots = items.map((el) => el.querySelector('.st-dot')?.getBoundingClientRect()).filter(Boolean);
    const hit = (r, q) => r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom;
    const box = this.map.getContainer().getBoundingClientRect();
    // Puts a label on the first side where it stays inside the map, clear of `avoid` and of the
    // labels placed before it; else hides it (it shows on hover and focus).
    const place = (label, avoid) => {
      for (const side of sides) {
        label.classList.remove('hidden-label', ...sides);
        label.classList.add(side);
        const r = label.getBoundingClientRect();
        if (r.width === 0) return; // labels hidden by the layout (phone)
        const inside = r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
        if (inside && !placed.some((q) => hit(r, q)) && !avoid.some((q) => hit(r, q))) { placed.push(r); return; }
      }
      label.classList.remove(...sides);
      label.classList.add('pos-r', 'hidden-label');
    };
    for (const el of items) {
      const label = el.querySelector('.st-label');
      if (label) place(label, dots);
    }
    // then the river points' labels, where room is left
    const rv = this.rivers.map((m) => m.getElement()).filter(Boolean);
    const rvDots = rv.map((el) => el.querySelector('.rv-dot').getBoundingClientRect());
    rv.forEach((el, i) => place(el.querySelector('.rv-label'), dots.concat(rvDots.filter((_, k) => k !== i))));
  }

  icon(st, level, stale) {
    const cls = level == null ? 'lv-u' : `lv-${level}`;
    const num = level == null ? '?' : String(4 - level); // the Siaga number, readable without colour
    const kind = st.kind === 'rain' ? 'rain' : 'river';
    return this.L.divIcon({
      className: `st-marker ${cls} ${kind}${stale ? ' stale' : ''}`,
      // The label is the marker's accessible name (so what is seen is what a screen reader says).
      html: `<span class="st-dot" aria-hidden="true">${num}</span>`
        + `<span class="st-label"><b>${esc(shortName(st.name))}</b> ${esc(levelName(level))}`
        + `${stale && level != null ? ` <i>(${esc(t('stale'))})</i>` : ''}</span>`,
      iconSize: [26, 26],
      iconAnchor: [13, 13],
    });
  }

  decorate(m) {
    const el = m.getElement();
    if (!el || !m.station) return;
    const label = t('markers_label', { name: m.station.name, level: levelName(m.level) })
      + (m.stale ? ` (${t('stale')})` : '');
    el.setAttribute('title', label);
    el.dataset.station = m.station.code;
    el.dataset.level = m.level == null ? 'unknown' : String(m.level);
    if (!el.sinergiKeys) { // role=button: Enter and Space open the station, as a click does
      el.sinergiKeys = true;
      el.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); e.stopPropagation(); this.onSelect(m.station.code); }
      });
    }
  }

  // A tile server (the tile_url setting); without one the map is the boundaries alone.
  setTiles(url) {
    let host = '';
    try { host = new URL(url.replace(/\{s\}\./, '')).host; } catch { /* a template */ }
    this.L.tileLayer(url, { maxZoom: 18, attribution: esc(host) }).addTo(this.map);
    this.map.getContainer().classList.remove('no-tiles');
  }

  focusStation(code) {
    const m = this.markers.get(code);
    if (m && !this.map.getBounds().pad(-0.1).contains(m.getLatLng())) this.map.panTo(m.getLatLng(), { animate: false });
  }

  invalidate() { this.map.invalidateSize(); }
}

const $ = (id) => document.getElementById(id);
const h = (tag, props = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...kids.flat().filter((x) => x != null && x !== false));
  return el;
};

const ACTING_ROLES = new Set(['admin', 'operator', 'staff']);
const RECONCILE_MS = 30000; // full reload of stations and alerts: bounds staleness if events are missed

const S = {
  me: null,
  csrf: null,
  config: { tile_url: '', regency: '' },
  regency: null,        // {code, name}
  kecamatan: new Map(), // code -> name
  stations: new Map(),  // code -> station of /stations/latest
  alerts: new Map(),    // id -> open alert
  history: [],
  view: 'open',
  selected: null,
  chartRange: '24h',
  chart: null,
  lastData: null,       // Date of the newest data we know is current
  live: false,
  soundOn: true,
  silenced: new Set(),  // Awas alert ids whose sound was silenced
  started: false,
};

// ---- API -----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
  let r;
  try {
    r = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, e.message || 'network error');
  }
  if (r.status === 204) return null;
  const j = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new ApiError(r.status, j?.error?.message || r.statusText, r.headers.get('Retry-After'));
    if (r.status === 401 && S.started && !path.startsWith('/api/v1/auth/')) signedOut();
    throw err;
  }
  return j;
}

// ---- levels --------------------------------------------------------------------------------
const isActive = (a) => a.state === 'active_unack' || a.state === 'active_ack';

// A station's level: the highest open public alert level; 0 when it reports and has none;
// null (unknown, grey) when it is silent and has none.
function stationLevel(code) {
  let lv = -1;
  for (const a of S.alerts.values()) if (a.station === code && a.public && isActive(a)) lv = Math.max(lv, a.level);
  if (lv >= 0) return lv;
  const st = S.stations.get(code);
  return st && st.state === 'ok' ? 0 : null;
}
const stationStale = (code) => S.stations.get(code)?.state === 'unknown';
const badge = (level, extra = '') => h('span', { class: `badge lv-${level == null ? 'u' : level} ${extra}` }, levelName(level));

function primarySensor(st) {
  const names = Object.keys(st.sensors || {});
  const pref = { water_level: 'level', rain: 'rain', weather: 'rain', waste_bin: 'fill' }[st.kind];
  return names.includes(pref) ? pref : names[0];
}

function valueText(st) {
  const name = primarySensor(st);
  const s = name && st.sensors[name];
  if (!s || s.v == null) return t('no_data');
  return `${fmtNumber(s.v)} ${s.unit}`;
}

function ageSeconds(st) {
  const s = st.sensors?.[primarySensor(st)];
  const last = s?.last?.t;
  return last ? (Date.now() - new Date(last).getTime()) / 1000 : null;
}

// ---- rendering: stations -------------------------------------------------------------------
function sortedStations() {
  return [...S.stations.values()].sort((a, b) =>
    (stationLevel(b.code) ?? -1) - (stationLevel(a.code) ?? -1) || a.name.localeCompare(b.name));
}

function renderStations() {
  S.map?.setStations([...S.stations.values()], stationLevel, stationStale);
  const rows = sortedStations().map((st) => {
    const lv = stationLevel(st.code);
    return h('tr', { dataset: { station: st.code, level: lv == null ? 'unknown' : String(lv) },
      class: st.code === S.selected ? 'selected' : '' },
    h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => selectStation(st.code) },
      shortName(st.name), st.demo ? h('span', { class: 'demo' }, t('demo')) : null)),
    h('td', {}, badge(lv), stationStale(st.code) ? h('span', { class: 'stale-tag' }, t('stale')) : null),
    h('td', { class: 'num' }, valueText(st)),
    h('td', { class: 'num age', dataset: { code: st.code } }, fmtDuration(ageSeconds(st))));
  });
  $('station-rows').replaceChildren(...rows);
}

function renderAges() {
  for (const td of document.querySelectorAll('td.age')) {
    const st = S.stations.get(td.dataset.code);
    if (st) td.textContent = fmtDuration(ageSeconds(st));
  }
  const ageEl = document.querySelector('#station-body .st-age');
  const st = S.stations.get(S.selected);
  if (ageEl && st) ageEl.textContent = t('ago', { d: fmtDuration(ageSeconds(st)) });
}

// ---- rendering: alerts ---------------------------------------------------------------------
const alertEls = new Map(); // id -> <article>, kept across renders so open forms survive events
// Until /api/v1/me answers (just after the first screen) the buttons show; the server decides.
const canAct = () => !S.me || ACTING_ROLES.has(S.me.role);

function unitOf(code) {
  const st = S.stations.get(code);
  return st?.sensors?.[primarySensor(st)]?.unit || '';
}

function alertSummary(a) {
  const st = S.stations.get(a.station);
  const unit = unitOf(a.station);
  const facts = [
    h('span', { class: 'state' }, t('st_' + a.state)),
    h('span', {}, t('raised', { t: fmtTime(a.raised_at) })),
    a.value != null ? h('span', {}, `${t('value')}: ${fmtNumber(a.value)} ${unit}`) : null,
    a.escalation > 0 ? h('span', { class: 'esc' }, t('escalation', { n: a.escalation })) : null,
    a.shelved_until && new Date(a.shelved_until) > new Date()
      ? h('span', { class: 'shelved' }, t('shelved_until', { t: fmtTime(a.shelved_until) })) : null,
    a.acked_by ? h('span', {}, t('acked_by', { who: a.acked_by, t: fmtTime(a.acked_at) })) : null,
  ];
  return h('div', { class: 'alert-summary' },
    h('div', { class: 'alert-title' }, badge(a.level),
      h('button', { type: 'button', class: 'link st-name', onclick: () => selectStation(a.station) }, st ? shortName(st.name) : a.station),
      h('span', { class: 'rule' }, t('rule_' + a.rule)),
      a.public ? null : h('span', { class: 'op-only' }, t('operator_only'))),
    h('div', { class: 'alert-facts' }, facts));
}

function alertForm(a, el, kind) {
  const close = () => { form.remove(); el.querySelector(`.act-${kind}`)?.focus(); };
  const fields = kind === 'ack'
    ? [h('label', { for: `note-${a.id}` }, t('note')), h('input', { id: `note-${a.id}`, name: 'note', maxlength: '500', autocomplete: 'off' })]
    : [h('label', { for: `reason-${a.id}` }, t('reason')), h('input', { id: `reason-${a.id}`, name: 'reason', required: true, maxlength: '500', autocomplete: 'off' }),
      h('label', { for: `minutes-${a.id}` }, t('minutes')),
      h('select', { id: `minutes-${a.id}`, name: 'minutes' }, [15, 30, 60, 120, 240, 480].map((m) => h('option', { value: String(m), selected: m === 60 }, String(m))))];
  const msg = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: `alert-form form-${kind}`, onkeydown: (e) => { if (e.key === 'Escape') close(); } },
    ...fields,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn' }, t('send')),
      h('button', { type: 'button', class: 'btn ghost-dark', onclick: close }, t('cancel'))),
    msg);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const body = kind === 'ack' ? { note: fd.get('note') || '' } : { reason: fd.get('reason'), minutes: Number(fd.get('minutes')) };
    form.querySelector('[type=submit]').disabled = true;
    try {
      if (!S.csrf) await loadMe(); // a write needs the CSRF token of the session
      const updated = await api(`/api/v1/alerts/${a.id}/${kind}`, { method: 'POST', body });
      upsertAlert(updated);
      form.remove();
      announce(t(kind === 'ack' ? 'ack_done' : 'shelve_done'));
      renderAll();
      alertEls.get(a.id)?.querySelector('.act-ack, .act-shelve, .act-hist')?.focus();
    } catch (err) {
      msg.textContent = t('action_failed', { msg: err.message });
      form.querySelector('[type=submit]').disabled = false;
    }
  });
  return form;
}

function openForm(id, kind) {
  const el = alertEls.get(id);
  const a = S.alerts.get(id);
  if (!el || !a) return;
  el.querySelector('.alert-form')?.remove();
  const form = alertForm(a, el, kind);
  el.querySelector('.alert-actions').after(form);
  form.querySelector('input, select')?.focus();
}

async function toggleHistory(id) {
  const el = alertEls.get(id);
  const box = el?.querySelector('.alert-history');
  if (!box) return;
  const btn = el.querySelector('.act-hist');
  if (!box.hidden) { box.hidden = true; btn.setAttribute('aria-expanded', 'false'); return; }
  box.hidden = false;
  btn.setAttribute('aria-expanded', 'true');
  try {
    const a = await api(`/api/v1/alerts/${id}`);
    box.replaceChildren(h('ol', {}, (a.history || []).map((x) => h('li', {},
      h('time', {}, fmtTime(x.at, { seconds: true })), ' ', t('act_' + x.action), ' — ', levelName(x.level),
      ` · ${x.actor}`, x.note ? h('q', {}, x.note) : null))));
  } catch (err) {
    box.textContent = t('load_failed', { msg: err.message });
  }
}

function alertElement(a) {
  let el = alertEls.get(a.id);
  if (!el) {
    const actions = h('div', { class: 'alert-actions' });
    el = h('article', { class: 'alert', dataset: { alertId: String(a.id) } }, h('div', { class: 'alert-summary' }), actions,
      h('div', { class: 'alert-history', hidden: true, id: `hist-${a.id}` }));
    alertEls.set(a.id, el);
  }
  el.className = `alert lv-${a.level} ${a.state}`;
  el.dataset.state = a.state;
  el.dataset.station = a.station;
  el.dataset.level = String(a.level);
  el.dataset.rule = a.rule;
  el.setAttribute('aria-label', `${levelName(a.level)} — ${S.stations.get(a.station)?.name || a.station}`);
  el.querySelector('.alert-summary').replaceWith(alertSummary(a));
  const acts = [];
  if (canAct() && (a.state === 'active_unack' || a.state === 'cleared_unack')) {
    acts.push(h('button', { type: 'button', class: 'btn act-ack', onclick: () => openForm(a.id, 'ack') }, t('ack')));
  }
  if (canAct() && a.state !== 'closed') {
    acts.push(h('button', { type: 'button', class: 'btn ghost-dark act-shelve', onclick: () => openForm(a.id, 'shelve') }, t('shelve')));
  }
  const hist = el.querySelector('.alert-history');
  acts.push(h('button', { type: 'button', class: 'btn ghost-dark act-hist', 'aria-controls': hist.id,
    'aria-expanded': hist.hidden ? 'false' : 'true', onclick: () => toggleHistory(a.id) }, t('show_history')));
  const bar = el.querySelector('.alert-actions');
  const focused = bar.contains(document.activeElement) ? document.activeElement.className : null;
  bar.replaceChildren(...acts);
  if (focused) bar.querySelector('.' + focused.split(' ').pop())?.focus();
  return el;
}

function renderAlerts() {
  const list = $('alert-list');
  $('tab-open').setAttribute('aria-pressed', String(S.view === 'open'));
  $('tab-history').setAttribute('aria-pressed', String(S.view === 'history'));
  if (S.view === 'history') { renderHistory(list); return; }
  for (const [id, el] of alertEls) if (!S.alerts.has(id)) { el.remove(); alertEls.delete(id); }
  const open = [...S.alerts.values()].sort((a, b) => b.level - a.level || (a.raised_at < b.raised_at ? 1 : -1));
  if (!open.length) {
    list.replaceChildren(h('p', { class: 'muted empty' }, t('no_open_alerts')));
    return;
  }
  const want = [];
  for (let lv = 3; lv >= 0; lv--) {
    const group = open.filter((a) => a.level === lv);
    if (!group.length) continue;
    want.push(h('h3', { class: `group lv-${lv}` }, `${levelName(lv)} (${group.length})`));
    for (const a of group) want.push(alertElement(a));
  }
  // Reorder only when the order changed: moving a node would drop the focus inside it.
  const now = [...list.children];
  const same = now.length === want.length && now.every((el, i) => el === want[i] || (el.tagName === 'H3' && want[i].tagName === 'H3'));
  if (!same) list.replaceChildren(...want);
  else now.forEach((el, i) => { if (el.tagName === 'H3') el.replaceWith(want[i]); });
}

async function renderHistory(list) {
  list.replaceChildren(h('p', { class: 'muted' }, t('loading')));
  try {
    const all = await api('/api/v1/alerts?state=all&limit=200');
    S.history = all.sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
  } catch (err) {
    list.replaceChildren(h('p', { class: 'error' }, t('load_failed', { msg: err.message })));
    return;
  }
  if (S.view !== 'history') return;
  if (!S.history.length) { list.replaceChildren(h('p', { class: 'muted empty' }, t('no_history'))); return; }
  list.replaceChildren(h('table', { class: 'hist-table' },
    h('thead', {}, h('tr', {}, [t('col_time'), t('col_station'), t('col_level'), t('state')].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, S.history.map((a) => h('tr', { dataset: { alertId: String(a.id) } },
      h('td', {}, fmtTime(a.raised_at, { date: true })),
      h('td', {}, `${shortName(S.stations.get(a.station)?.name || a.station)} · ${t('rule_' + a.rule)}`),
      h('td', {}, badge(a.level)),
      h('td', {}, t('st_' + a.state), a.acked_by ? ` (${a.acked_by})` : ''))))));
}

// ---- rendering: station panel --------------------------------------------------------------
function renderStation() {
  const body = $('station-body');
  const st = S.stations.get(S.selected);
  if (!st) {
    S.chart?.destroy(); S.chart = null;
    body.replaceChildren(h('p', { class: 'muted' }, t('pick_station')));
    return;
  }
  const lv = stationLevel(st.code);
  const sensor = primarySensor(st);
  const s = st.sensors?.[sensor] || {};
  const kecCode = (st.region || '').split('.').slice(0, 3).join('.');
  const region = S.kecamatan.get(kecCode) ? `Kec. ${S.kecamatan.get(kecCode)} (${st.region})` : st.region;
  const th = st.thresholds;
  const facts = [
    [t('current'), s.v != null ? `${fmtNumber(s.v)} ${s.unit}` : t('no_data'), 'st-value'],
    [t('age'), t('ago', { d: fmtDuration(ageSeconds(st)) }), 'st-age'],
    [t('qc'), s.qc ? t('qc_' + s.qc) : '—', `st-qc qc-${s.qc || 'none'}`],
    [t('state'), t('state_' + st.state), ''],
    [t('kind'), t('kind_' + st.kind), ''],
    [t('river'), st.river || '—', ''],
    [t('region'), region || '—', ''],
  ];
  if (s.v == null && s.last) facts.splice(2, 0, ['↳', `${fmtNumber(s.last.v)} ${s.unit} · ${fmtTime(s.last.t)}`, 'st-last']);
  const stAlerts = [...S.alerts.values()].filter((a) => a.station === st.code);
  const head = h('div', { class: 'st-head' },
    h('h3', {}, st.name), badge(lv, 'big'), st.demo ? h('span', { class: 'demo' }, t('demo')) : null,
    h('button', { type: 'button', class: 'btn ghost-dark close', onclick: () => selectStation(null) }, t('close')));
  const dl = h('dl', { class: 'facts' }, facts.flatMap(([k, v, cls]) => [h('dt', {}, k), h('dd', { class: cls }, v)]));
  const thList = th ? h('p', { class: 'thresholds' }, `${t('thresholds')}: `,
    ['waspada', 'siaga', 'awas'].map((k, i) => h('span', { class: `th lv-${i + 1}` }, `${LEVELS[i + 1].status} · ${LEVELS[i + 1].siaga} ≥ ${fmtNumber(th[k])} ${s.unit || 'm'}`))) : null;
  const alertsLine = stAlerts.length ? h('p', { class: 'st-alerts' }, stAlerts.map((a) => h('span', {}, badge(a.level), ' ', t('rule_' + a.rule), ' — ', t('st_' + a.state)))) : null;
  const rangeBtns = h('div', { class: 'tabs', role: 'group', 'aria-label': t('chart_range') },
    ['24h', '7d'].map((r) => h('button', { type: 'button', class: 'tab', 'aria-pressed': String(S.chartRange === r),
      onclick: () => { S.chartRange = r; renderStation(); } }, t(r === '24h' ? 'chart_24h' : 'chart_7d'))));
  const chartBox = h('div', { class: 'chart-box', id: 'chart-box' });
  S.chart?.destroy(); S.chart = null;
  body.replaceChildren(head, dl, thList, alertsLine, rangeBtns, chartBox);
  body.dataset.station = st.code;
  if (!sensor) return;
  const want = `${st.code}|${S.chartRange}`;
  S.chartKey = want;
  import('./chart.js').then(({ renderChart }) => renderChart(chartBox, {
    code: st.code, sensor, unit: s.unit || '', thresholds: th, range: S.chartRange, fetchJson: api,
    i18n: { t, fmtNumber, fmtAxis, fmtTime, LEVELS },
  })).then((c) => {
    if (S.chartKey === want && chartBox.isConnected) S.chart = c; else c.destroy();
  }).catch((err) => { chartBox.textContent = t('load_failed', { msg: err.message }); });
}

function selectStation(code) {
  S.selected = code;
  renderStation();
  renderStations();
  if (code) {
    S.map?.focusStation(code);
    $('station').focus({ preventScroll: false });
  }
}

// ---- Awas: the unmistakable cue ------------------------------------------------------------
let audio = null;
function audioContext() {
  const C = window.AudioContext || window.webkitAudioContext;
  if (!C) return null;
  if (!audio) audio = new C();
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

function beep() {
  window.sinergiCOC.beeps++;
  const ctx = audioContext();
  if (!ctx) return;
  if (ctx.state !== 'running') { $('sound').title = t('sound_blocked'); }
  const t0 = ctx.currentTime + 0.02;
  for (let i = 0; i < 3; i++) { // three falling two-tone pulses: a siren, not a chime
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.type = 'square';
    o.frequency.setValueAtTime(1046, t0 + i * 0.5);
    o.frequency.setValueAtTime(784, t0 + i * 0.5 + 0.22);
    g.gain.setValueAtTime(0.0001, t0 + i * 0.5);
    g.gain.exponentialRampToValueAtTime(0.25, t0 + i * 0.5 + 0.02);
    g.gain.setValueAtTime(0.25, t0 + i * 0.5 + 0.4);
    g.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.5 + 0.45);
    o.connect(g).connect(ctx.destination);
    o.start(t0 + i * 0.5);
    o.stop(t0 + i * 0.5 + 0.46);
  }
}

let alarmTimer = null;
function updateAwas() {
  const awas = [...S.alerts.values()].filter((a) => a.level === 3 && a.state === 'active_unack');
  const box = $('awas');
  document.body.classList.toggle('awas-on', awas.length > 0);
  box.hidden = awas.length === 0;
  if (!awas.length) { clearInterval(alarmTimer); alarmTimer = null; return; }
  $('awas-text').textContent = awas.map((a) => t('awas_text', {
    station: S.stations.get(a.station)?.name || a.station, rule: t('rule_' + a.rule),
    value: `${fmtNumber(a.value)} ${unitOf(a.station)}`.trim(),
  })).join(' · ');
  const loud = awas.some((a) => !S.silenced.has(a.id));
  $('awas-silence').hidden = !loud || !S.soundOn;
  if (loud && S.soundOn && !alarmTimer) {
    setTimeout(beep, 0); // after this frame: starting audio can take a while
    alarmTimer = setInterval(() => {
      if (S.soundOn && [...S.alerts.values()].some((a) => a.level === 3 && a.state === 'active_unack' && !S.silenced.has(a.id))) beep();
    }, 5000);
  } else if ((!loud || !S.soundOn) && alarmTimer) {
    clearInterval(alarmTimer);
    alarmTimer = null;
  }
}

// ---- state changes -------------------------------------------------------------------------
const alertSeen = new Map(); // id -> when an event or an action last brought it
const closedAt = new Map();  // id -> version at which it closed (a late snapshot must not revive it)

function upsertAlert(a) {
  const have = S.alerts.get(a.id);
  if (have && have.version > a.version) return; // an older copy (events and replies can cross)
  alertSeen.set(a.id, Date.now());
  if (a.state === 'closed') { S.alerts.delete(a.id); closedAt.set(a.id, a.version); } else S.alerts.set(a.id, a);
}

function renderAll() {
  renderStations();
  renderAlerts();
  renderStation();
  updateAwas();
}

let renderQueued = false;
function scheduleRender(stationToo) {
  S.renderStationToo ||= stationToo;
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderStations();
    renderAlerts();
    if (S.renderStationToo) renderStation();
    S.renderStationToo = false;
    updateAwas();
  });
}

function announce(text) {
  const el = $('announce');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 50);
}

// A snapshot may be older than events already applied (it is fetched while they arrive, and the
// server may serve the document it has): per sensor, the newer reading wins.
function mergeLatest(stations) {
  const next = new Map();
  for (const st of stations) {
    const old = S.stations.get(st.code);
    for (const [name, s] of Object.entries(old?.sensors || {})) {
      const mine = st.sensors?.[name];
      if (s.last?.t && (!mine?.last?.t || new Date(s.last.t) > new Date(mine.last.t))) {
        st.sensors[name] = s;
        if (s.v != null) st.state = 'ok';
      }
    }
    next.set(st.code, st);
  }
  S.stations = next;
}

async function loadLatest() {
  const j = await api('/api/v1/stations/latest');
  mergeLatest(j.stations);
  S.lastData = new Date();
}

// Same for alerts: the higher version wins, and an alert an event brought after the request
// left stays even if the answer does not have it yet.
async function loadAlerts() {
  const t0 = Date.now();
  const list = await api('/api/v1/alerts?state=open');
  const next = new Map(list.filter((a) => a.state !== 'closed' && !(closedAt.get(a.id) >= a.version)).map((a) => [a.id, a]));
  for (const [id, a] of S.alerts) {
    const snap = next.get(id);
    if (snap ? a.version > snap.version : (alertSeen.get(id) || 0) > t0) next.set(id, a);
  }
  for (const [id, t] of alertSeen) if (t < t0) alertSeen.delete(id);
  S.alerts = next;
}

async function reconcile() {
  try {
    await Promise.all([loadLatest(), loadAlerts()]);
    S.pollFailed = false;
  } catch (err) {
    S.pollFailed = err.status !== 401;
  }
  setLive();
  scheduleRender(true);
}

// ---- live events ---------------------------------------------------------------------------
let es = null;
let esRetry = null;
let lastEventId = '';

function onEvent(type, e) {
  if (e.lastEventId) lastEventId = e.lastEventId;
  let d;
  try { d = JSON.parse(e.data); } catch { return; }
  S.lastData = new Date();
  if (type === 'reset') { reconcile(); return; }
  const st = S.stations.get(d.station);
  if (type === 'reading' && st) {
    for (const [name, v] of Object.entries(d.values || {})) {
      const s = st.sensors[name] || (st.sensors[name] = { unit: '' });
      s.v = v.v;
      s.qc = v.qc;
      s.last = { v: v.v, t: v.t };
      if (d.station === S.selected && name === primarySensor(st)) S.chart?.addPoint(v.t, v.v, v.qc);
    }
    st.state = 'ok';
    scheduleRender(false);
    if (d.station === S.selected) refreshStationFacts();
  } else if (type === 'station' && st) {
    st.state = d.state;
    if (d.state === 'unknown') for (const s of Object.values(st.sensors)) s.v = null;
    scheduleRender(d.station === S.selected);
  } else if (type === 'alert' && d.alert) {
    const before = S.alerts.get(d.alert.id);
    upsertAlert(d.alert);
    if (d.action === 'raised' || (before && d.alert.level > before.level)) {
      announce(t('new_alert', { level: levelName(d.alert.level), station: S.stations.get(d.alert.station)?.name || d.alert.station }));
    }
    if (S.view === 'history') renderAlerts();
    scheduleRender(d.alert.station === S.selected);
  }
}

function refreshStationFacts() {
  const st = S.stations.get(S.selected);
  const body = $('station-body');
  if (!st || body.dataset.station !== st.code) return;
  const s = st.sensors[primarySensor(st)] || {};
  const v = body.querySelector('.st-value');
  if (v) v.textContent = s.v != null ? `${fmtNumber(s.v)} ${s.unit}` : t('no_data');
  const q = body.querySelector('.st-qc');
  if (q) { q.textContent = s.qc ? t('qc_' + s.qc) : '—'; q.className = `st-qc qc-${s.qc || 'none'}`; }
  renderAges();
}

function connectEvents() {
  clearTimeout(esRetry);
  if (es) es.close();
  const url = '/api/v1/events' + (lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : '');
  es = new EventSource(url);
  let wasDown = S.everDown; // a first connection needs no catching up: the data was just loaded
  es.onopen = () => {
    S.sseOpen = true;
    setLive();
    if (wasDown) reconcile(); // whatever happened while we were away
    wasDown = false;
  };
  es.onerror = () => {
    window.sinergiCOC.streamErrors++; // (the browser tests wait on it)
    S.sseOpen = false;
    wasDown = true;
    S.everDown = true;
    setLive();
    if (es.readyState === EventSource.CLOSED) { // refused (401, 503): the browser gives up; we do not
      esRetry = setTimeout(async () => {
        try { await api('/api/v1/me'); connectEvents(); } catch (err) {
          if (err.status !== 401) esRetry = setTimeout(connectEvents, 5000);
        }
      }, 3000);
    }
  };
  for (const type of ['reading', 'station', 'alert', 'reset']) es.addEventListener(type, (e) => onEvent(type, e));
}

function setLive() {
  const live = !!S.sseOpen && !S.pollFailed;
  S.live = live;
  const pill = $('live');
  pill.dataset.state = live ? 'live' : 'down';
  $('live-text').textContent = t(live ? 'live' : 'offline');
  document.body.classList.toggle('offline', !live && S.started);
  const banner = $('conn-banner');
  banner.hidden = live || !S.started;
  $('conn-detail').textContent = S.lastData ? t('conn_detail', { t: fmtTime(S.lastData, { seconds: true }) }) : t('conn_detail_never');
}

// ---- sign-in -------------------------------------------------------------------------------
function showLogin() {
  $('app').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('who').textContent = '';
  document.body.classList.remove('booting');
  document.body.dataset.view = 'login';
  $('username').focus();
}

function signedOut() {
  S.started = false;
  es?.close();
  es = null;
  S.sseOpen = false;
  clearInterval(alarmTimer);
  alarmTimer = null;
  $('conn-banner').hidden = true;
  $('awas').hidden = true;
  document.body.classList.remove('offline', 'awas-on');
  showLogin();
}

async function onLogin(e) {
  e.preventDefault();
  audioContext(); // a click: the browser lets the Awas sound play from now on
  const err = $('login-error');
  err.textContent = '';
  const btn = e.submitter || $('login-form').querySelector('[type=submit]');
  btn.disabled = true;
  try {
    const r = await api('/api/v1/auth/login', { method: 'POST', body: { username: $('username').value.trim(), password: $('password').value } });
    $('password').value = '';
    await start({ ...r.user, csrf_token: r.csrf_token });
  } catch (ex) {
    err.textContent = ex.status === 429 ? t('login_throttled', { s: ex.retryAfter || 60 })
      : ex.status === 401 ? t('login_failed') : t('load_failed', { msg: ex.message });
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try { await api('/api/v1/auth/logout', { method: 'POST' }); } catch { /* signed out anyway */ }
  signedOut();
}

// ---- start ---------------------------------------------------------------------------------
async function loadBoundaries() {
  try {
    const code = S.config.regency || (await api('/api/v1/regions'))[0].code;
    const [reg, kec] = await Promise.all([
      api(`/api/v1/regions/${encodeURIComponent(code)}?geometry=1`),
      api(`/api/v1/regions?parent=${encodeURIComponent(code)}&geometry=1`),
    ]);
    S.regency = { code, name: reg.properties?.name || code };
    $('regency-name').textContent = S.regency.name;
    for (const f of kec.features || []) S.kecamatan.set(f.properties.code, f.properties.name);
    S.map.setBoundaries(reg, kec);
    if (S.selected) renderStation();
  } catch { /* the map still shows the stations */ }
}

async function loadRivers() {
  try {
    S.map?.setRivers(await api('/api/v1/rivers'));
  } catch { /* the map still shows the stations and boundaries */ }
}

// Leaflet is a deferred classic script; the app (an async module) may run before it arrives.
function leafletReady() {
  if (window.L) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = $('leaflet-js');
    s.addEventListener('load', resolve);
    s.addEventListener('error', () => reject(new Error('Leaflet did not load')));
  });
}

function setMe(me) {
  S.me = me;
  S.csrf = me.csrf_token;
  $('who').textContent = `${me.username} · ${me.role}`;
}

async function loadMe() {
  try { setMe(await api('/api/v1/me')); scheduleRender(true); } catch { /* a 401 signs out */ }
}

// me: from the sign-in response, or null (then fetched after the first screen is up).
// preloaded: {latest, alerts} fetched at boot, or null.
async function start(me, preloaded) {
  if (me) setMe(me);
  $('logout').hidden = false;
  $('login').hidden = true;
  $('app').hidden = false;
  document.body.dataset.view = 'coc';
  document.body.classList.remove('booting');
  S.started = true;
  try {
    if (preloaded) {
      S.stations = new Map(preloaded.latest.stations.map((s) => [s.code, s]));
      S.alerts = new Map(preloaded.alerts.filter((a) => a.state !== 'closed').map((a) => [a.id, a]));
      S.lastData = new Date();
    } else {
      await Promise.all([loadLatest(), loadAlerts()]);
    }
  } catch (err) {
    $('alert-list').replaceChildren(h('p', { class: 'error' }, t('load_failed', { msg: err.message })));
  }
  connectEvents();
  setLive();
  renderAll();
  if (!me) loadMe();
  // interactive: alerts (with their buttons) and the station list are on screen and answer
  document.body.dataset.interactive = '1';
  performance.mark('coc-interactive');
  try {
    await leafletReady();
  } catch (err) {
    $('map').textContent = t('load_failed', { msg: err.message });
  }
  if (window.L && !S.map) {
    S.map = new StationMap($('map'), { onSelect: selectStation });
    $('map').setAttribute('aria-label', t('map_label'));
  } else {
    S.map?.invalidate();
  }
  renderStations();
  document.body.dataset.ready = '1';
  performance.mark('coc-ready');
  await S.configLoaded;
  if (S.config.tile_url) S.map?.setTiles(S.config.tile_url);
  if (!S.kecamatan.size) { loadBoundaries(); loadRivers(); }
}

function renderLegend() {
  $('legend').setAttribute('aria-label', t('legend'));
  $('legend').replaceChildren(...[3, 2, 1, 0, null].map((lv) => h('li', {}, h('span', { class: `sw lv-${lv == null ? 'u' : lv}`, 'aria-hidden': 'true' }, lv == null ? '?' : String(4 - lv)), levelName(lv))),
    h('li', { class: 'lg-river' }, h('span', { class: 'sw-river', 'aria-hidden': 'true' }), t('river_legend')));
}

function applyLanguage() {
  translatePage();
  const en = getLang() === 'en';
  const lb = $('lang');
  lb.textContent = en ? 'Bahasa Indonesia' : 'English';
  lb.lang = en ? 'id' : 'en';
  $('sound').textContent = t(S.soundOn ? 'sound_on' : 'sound_off');
  $('map').setAttribute('aria-label', t('map_label'));
  document.title = `SINERGI · ${t('title')} (COC)`;
  renderLegend();
  if (S.started) { setLive(); renderAll(); S.map?.setStations([...S.stations.values()], stationLevel, stationStale); S.map?.relabelRivers(); }
}

function tickClock() {
  $('clock').textContent = fmtTime(new Date(), { seconds: true, date: true });
}

function wire() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', logout);
  $('lang').addEventListener('click', () => { setLang(getLang() === 'en' ? 'id' : 'en'); applyLanguage(); });
  $('sound').addEventListener('click', () => {
    S.soundOn = !S.soundOn;
    $('sound').setAttribute('aria-pressed', String(S.soundOn));
    $('sound').textContent = t(S.soundOn ? 'sound_on' : 'sound_off');
    if (S.soundOn) audioContext();
    updateAwas();
  });
  $('tab-open').addEventListener('click', () => { S.view = 'open'; renderAlerts(); });
  $('tab-history').addEventListener('click', () => { S.view = 'history'; renderAlerts(); });
  $('awas-open').addEventListener('click', () => {
    const a = [...S.alerts.values()].find((x) => x.level === 3 && x.state === 'active_unack');
    if (!a) return;
    S.view = 'open';
    renderAlerts();
    selectStation(a.station);
    const el = alertEls.get(a.id);
    el?.scrollIntoView({ block: 'center' });
    if (canAct()) openForm(a.id, 'ack'); else el?.querySelector('button')?.focus();
  });
  $('awas-silence').addEventListener('click', () => {
    for (const a of S.alerts.values()) if (a.level === 3) S.silenced.add(a.id);
    updateAwas();
  });
  // Browsers start audio only after a user gesture: any click or key on the wall arms it.
  for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, () => audioContext(), { passive: true });
  setInterval(tickClock, 1000);
  setInterval(renderAges, 10000);
  setInterval(() => { if (S.started) reconcile(); }, RECONCILE_MS);
}

// A GET that the page preloads (<link rel=preload as=fetch>): plain fetch() so the browser
// hands over the preloaded response instead of asking again.
async function preloadedJson(path) {
  let r;
  try { r = await fetch(path); } catch (e) { throw new ApiError(0, e.message || 'network error'); }
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, j?.error?.message || r.statusText);
  return j;
}

async function boot() {
  performance.mark('coc-boot');
  window.sinergiCOC = { beeps: 0, streamErrors: 0, state: S };
  wire();
  applyLanguage();
  tickClock();
  S.configLoaded = fetch('/assets/config.json').then((r) => (r.ok ? r.json() : {}))
    .then((c) => Object.assign(S.config, c)).catch(() => {});
  // The first screen's data is already on its way (index.html preloads it); a 401 means: sign in.
  const [latest, alerts] = await Promise.allSettled([
    preloadedJson('/api/v1/stations/latest'), preloadedJson('/api/v1/alerts?state=open')]);
  if (latest.status === 'rejected') {
    if (latest.reason.status !== 401) $('login-error').textContent = t('load_failed', { msg: latest.reason.message });
    showLogin();
    return;
  }
  await start(null, alerts.status === 'fulfilled' ? { latest: latest.value, alerts: alerts.value } : null);
}

boot();
