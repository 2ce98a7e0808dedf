// The spikecv dashboard: live overview over server-sent events, a server-side
// paginated jobs table and per-job learning curves drawn as SVG. Plain script,
// no dependencies, nothing loaded from elsewhere.
'use strict';

(function () {
  const $ = (sel) => document.querySelector(sel);
  const SVG = 'http://www.w3.org/2000/svg';
  const STATES = ['succeeded', 'pruned', 'failed', 'cancelled', 'running', 'leased', 'pending'];

  // ---- login: the API and the event stream carry the HttpOnly session cookie
  // that the login link /login?token=… sets; this script never sees a token.
  // An old-style link (#token=…) goes through the login link once.
  const legacy = new URLSearchParams(location.hash.replace(/^#/, '')).get('token');
  if (legacy) {
    location.replace('/login?token=' + encodeURIComponent(legacy));
    return;
  }

  const state = {
    overview: null, receivedAt: 0, version: null,
    experiment: '', sort: '', dir: 'asc', offset: 0, page: null,
    selected: null, refreshing: false, again: false,
  };
  window.spikecvDashboard = { boot: Date.now(), overviews: 0, state: state };

  function showError(msg) {
    const el = $('#error');
    el.textContent = msg || '';
    el.hidden = !msg;
  }

  async function api(path) {
    const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    const body = await res.json().catch(() => ({ error: res.statusText }));
    if (res.status === 401) {
      // No session, or one that expired or was logged out: back to the login page.
      location.assign('/login');
      throw new Error('The coordinator needs its token: log in at ' + location.origin + '/login');
    }
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  // ---- formatting
  const pct = (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(2) + ' %');
  const num = (x, d) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    s = Math.max(0, Math.round(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const cell = (text, cls, attrs) => el('td', Object.assign({ text: text, class: cls }, attrs || {}));

  // ---- overview: experiments with their aggregate, workers
  function metricText(m) {
    if (!m || m.mean === null) return '–';
    const std = m.std_population === null ? '' : ' ± ' + (100 * m.std_population).toFixed(2);
    return (100 * m.mean).toFixed(2) + ' %' + std;
  }
  // A configuration's network: compact name, parameters, FLOPs of one
  // training sample's forward pass (as the report gives them).
  function siText(x) {
    const p = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']].find(([s]) => x >= s);
    const v = p ? x / p[0] : x;
    return v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2) + ' ' + (p ? p[1] : '');
  }
  // A configuration against the baseline, as the report compares them: the
  // mean paired difference, the corrected resampled t-test's Holm-adjusted
  // p-value and the Bayesian correlated t-test's posterior probabilities.
  function versusCell(v) {
    if (!v) return cell('baseline', 'muted', { 'data-field': 'versus' });
    const p = v.posterior;
    const d = v.mean_difference_pp === null ? '–' : (v.mean_difference_pp >= 0 ? '+' : '') + v.mean_difference_pp.toFixed(2);
    const holm = v.corrected_t_p_holm === null ? '–' : v.corrected_t_p_holm.toPrecision(3);
    const probs = p ? [p.p_better, p.p_equivalent, p.p_worse].map((x) => x.toFixed(3)).join(' / ') : '–';
    return cell(d + ' pp, p ' + holm + ', ' + probs, 'num', {
      'data-field': 'versus',
      'data-p-better': p ? p.p_better : null,
      'data-p-equivalent': p ? p.p_equivalent : null,
      'data-p-worse': p ? p.p_worse : null,
      title: p ? 'rope ± ' + p.rope_pp + ' pp' : '',
    });
  }

  function networkCell(n) {
    if (!n) return cell('–', null, { 'data-field': 'network' });
    return el('td', { 'data-field': 'network', 'data-name': n.name, 'data-parameters': n.parameters, 'data-flops': n.flops_per_sample,
      title: 'FLOPs of one training sample\'s forward pass at T = ' + n.steps + '; ' + siText(n.test_flops_per_sample) + 'FLOPs per test sample at T = ' + n.test_steps }, [
      el('code', { text: n.name }),
      ' ' + n.parameters.toLocaleString('en-US') + ' params, ' + siText(n.flops_per_sample) + 'FLOPs',
    ]);
  }
  function stat(label, value, name) {
    return el('div', { class: 'stat' }, [
      el('div', { class: 'label', text: label }),
      el('div', { class: 'value', text: value, 'data-stat': name }),
    ]);
  }
  function renderExperiment(e) {
    const p = e.progress;
    const bar = el('div', { class: 'bar', title: 'jobs by state' });
    for (const s of STATES) {
      if (!p[s]) continue;
      const seg = el('span', { class: 's-' + s, title: p[s] + ' ' + s });
      seg.style.flexGrow = String(p[s]);
      bar.append(seg);
    }
    if (p.missing) { const seg = el('span', { class: 's-pending' }); seg.style.flexGrow = String(p.missing); bar.append(seg); }
    const counts = el('div', { class: 'stats' }, [
      stat('planned', String(p.planned), 'planned'),
      stat('pending', String(p.pending + p.missing), 'pending'),
      stat('running', String(p.running + p.leased), 'running'),
      stat('succeeded', String(p.succeeded), 'succeeded'),
      stat('failed', String(p.failed + p.cancelled), 'failed'),
      p.pruned ? stat('pruned', String(p.pruned), 'pruned') : null,
      stat('wall time', duration(e.wall_seconds), 'wall'),
      stat('ETA', e.partial ? duration(e.eta_seconds) : 'done', 'eta'),
      stat('samples/s', num(e.samples_per_second, 1), 'throughput'),
    ]);
    const compared = e.aggregate.some((g) => g.versus_baseline);
    const rows = e.aggregate.map((g) =>
      el('tr', { 'data-variant': g.variant, 'data-protocol': g.protocol, 'data-configuration': g.configuration }, [
        cell(g.configuration ? g.variant + ' [' + g.configuration + ']' : g.variant),
        el('td', {}, [g.protocol + ' ', g.optimistic ? el('span', { class: 'badge optimistic', text: 'optimistic', title: 'best test accuracy over epochs' }) : null]),
        networkCell(g.network),
        cell(g.test_accuracy.count + ' / ' + g.planned, 'num', { 'data-field': 'count', 'data-count': g.test_accuracy.count, 'data-planned': g.planned }),
        cell(metricText(g.test_accuracy), 'num', { 'data-field': 'test', 'data-mean': g.test_accuracy.mean, 'data-std': g.test_accuracy.std_population }),
        cell(g.test_accuracy.std_sample === null ? '–' : (100 * g.test_accuracy.std_sample).toFixed(2), 'num', { 'data-field': 'test-std-sample', 'data-value': g.test_accuracy.std_sample }),
        cell(g.val_accuracy ? metricText(g.val_accuracy) : 'n/a', 'num', { 'data-field': 'val', 'data-mean': g.val_accuracy ? g.val_accuracy.mean : null }),
        compared ? versusCell(g.versus_baseline) : null,
        el('td', {}, [el('span', { class: 'badge ' + (e.partial ? 'partial' : 'final'), text: e.partial ? 'partial' : 'final', 'data-field': 'partial' })]),
      ]));
    const aggregate = el('table', { class: 'aggregate' }, [
      el('thead', {}, [el('tr', {}, ['variant', 'protocol', 'network (parameters, FLOPs/sample)', 'jobs', 'test accuracy (mean ± std)', 'std (ddof 1)', 'val accuracy', compared ? 'vs baseline: Δ pp, corrected p (Holm), P(better / equivalent / worse)' : null, ''].filter((h) => h !== null).map((h) => el('th', { text: h })))]),
      el('tbody', {}, rows),
    ]);
    return el('section', { class: 'panel experiment', 'data-experiment': e.id }, [
      el('div', { class: 'experiment-head' }, [
        el('h2', { text: e.name || 'experiment' }),
        el('code', { text: e.id, title: 'experiment id' }),
        el('span', { class: 'muted', text: 'config hash ' + e.config_hash.slice(0, 16) + ' · ' + (e.epochs || '?') + ' epochs per job · submitted ' + new Date(e.created_unix * 1000).toLocaleString() }),
      ]),
      counts, bar,
      el('h3', {}, ['Aggregate so far ', el('span', { class: 'muted', text: '(same figures as coordinator report; std is population std, ddof 0)' })]),
      el('div', { class: 'scroll' }, [aggregate]),
      el('details', {}, [el('summary', { text: 'configuration' }), el('pre', { class: 'config', text: e.config_toml })]),
    ]);
  }

  // A suspect worker (a run of it disagreed with two others): a badge whose
  // title is the reason, then the reason, the job, since when, and the
  // command that clears it, in plain text.
  function suspectParts(w) {
    const s = w.suspect;
    if (!s) return [];
    const since = new Date(s.since_ms).toLocaleString();
    return [
      ' ', el('span', { class: 'badge suspect', title: s.reason, 'data-suspect': 'badge', text: 'suspect' }),
      el('div', { class: 'suspect-note', 'data-suspect': 'note' }, [
        s.reason + ' (job ' + s.job + ', since ' + since + '); no new leases until ',
        el('code', { text: s.clear_command }),
      ]),
    ];
  }

  function renderWorkers(o) {
    const body = $('#workers tbody');
    body.replaceChildren(...o.workers.map((w) => el('tr', { 'data-worker': w.id, class: w.suspect ? 'suspect' : null }, [
      cell(w.name), cell(w.host),
      el('td', {}, [el('span', { class: 'badge state-' + w.state, text: w.state }), ...suspectParts(w)]),
      cell(w.slots.map((s) => s.device + (s.device_name && s.device_name !== s.device ? ' (' + s.device_name + ')' : '')).join(', ') || '–'),
      cell(w.jobs.map((j) => j.variant + ' s' + j.seed + ' f' + j.fold + ' on ' + j.device + ' ' + (j.epoch || 0) + '/' + (j.of || '?')).join('; ') || 'idle'),
      cell('', 'num', { 'data-seen': w.last_seen_ms }),
    ])));
    // Pending jobs of a training script no live worker registered: they
    // wait, and the line says what would run them (docs/trainers.md).
    $('#trainer-waits').replaceChildren(...(o.waiting_for_trainers || []).map((t) => el('li', { 'data-trainer-wait': t.trainer }, [
      el('span', { class: 'badge waiting', text: 'waiting' }),
      ' ' + t.jobs + ' pending job(s) need trainer ' + t.trainer + ', which no live worker registered: ',
      el('code', { text: 'worker join --trainer ' + t.trainer + '=SCRIPT' }),
    ])));
    const suspects = o.workers.filter((w) => w.suspect).length;
    $('#worker-count').textContent = o.workers.length ? '(' + o.workers.filter((w) => w.state === 'alive').length + ' alive of ' + o.workers.length + (suspects ? ', ' + suspects + ' suspect' : '') + ')' : '(none yet)';
  }

  function renderExperimentChoices(o) {
    const select = $('#f-experiment');
    const ids = o.experiments.map((e) => e.id);
    if (select.options.length !== ids.length || [...select.options].some((opt, i) => opt.value !== ids[i])) {
      select.replaceChildren(...o.experiments.map((e) => el('option', { value: e.id, text: (e.name || 'experiment') + ' ' + e.id.slice(0, 10) })));
    }
    if (!state.experiment || !ids.includes(state.experiment)) state.experiment = ids.length ? ids[ids.length - 1] : '';
    select.value = state.experiment;
  }

  function tick() {
    const o = state.overview;
    if (!o) return;
    const since = (Date.now() - state.receivedAt) / 1000;
    for (const td of document.querySelectorAll('[data-seen]')) {
      td.textContent = duration((o.now_ms - Number(td.dataset.seen)) / 1000 + since) + ' ago';
    }
    for (const e of o.experiments) {
      const card = document.querySelector('[data-experiment="' + CSS.escape(e.id) + '"]');
      if (!card || !e.partial) continue;
      card.querySelector('[data-stat="wall"]').textContent = duration(e.wall_seconds === null ? null : e.wall_seconds + since);
      card.querySelector('[data-stat="eta"]').textContent = e.eta_seconds === null ? '–' : duration(e.eta_seconds - since);
    }
  }

  function onOverview(o) {
    window.spikecvDashboard.overviews += 1;
    if (o.error) { showError('The coordinator cannot read its state: ' + o.error); return; }
    showError('');
    state.overview = o;
    state.receivedAt = Date.now();
    $('#experiments').replaceChildren(...o.experiments.map(renderExperiment));
    if (!o.experiments.length) $('#experiments').append(el('section', { class: 'panel', text: 'No experiment yet: start the coordinator with --experiment or use coordinator submit.' }));
    renderWorkers(o);
    renderExperimentChoices(o);
    tick();
    if (o.version !== state.version) {
      state.version = o.version;
      refresh();
    }
  }

  // ---- jobs table (one page from the server)
  function jobsQuery() {
    const f = new FormData($('#filters'));
    const q = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v !== '' && k !== 'experiment') q.set(k, v);
    if (state.experiment) q.set('experiment', state.experiment);
    if (state.sort) { q.set('sort', state.sort); q.set('dir', state.dir); }
    q.set('offset', String(state.offset));
    return q.toString();
  }

  // The configuration filter: shown for a sweep, its options the sweep's labels.
  function renderConfigurations(labels) {
    const select = $('#f-configuration');
    const sweep = labels.length > 1;
    select.parentElement.hidden = !sweep;
    const want = ['', ...labels].join('\n');
    if (select.dataset.options === want) return;
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '', text: 'all' }), ...labels.map((l) => el('option', { value: l, text: l })));
    select.value = labels.includes(chosen) ? chosen : '';
    select.dataset.options = want;
  }

  function renderJobs(page) {
    state.page = page;
    renderConfigurations(page.configurations || []);
    const col = {};
    page.columns.forEach((c, i) => { col[c] = i; });
    const body = $('#jobs tbody');
    body.replaceChildren(...page.rows.map((r) => {
      const id = r[col.job];
      const tr = el('tr', { 'data-job': id, 'data-state': r[col.state], class: id === state.selected ? 'selected' : null }, [
        el('td', { class: 'mono', text: id.slice(0, 12), title: id }),
        cell(r[col.configuration] ? r[col.variant] + ' [' + r[col.configuration] + ']' : r[col.variant], null, { 'data-field': 'variant' }),
        cell(String(r[col.seed]), 'num'), cell(String(r[col.fold]), 'num'),
        el('td', {}, [el('span', { class: 'badge s-' + r[col.state], text: r[col.state], 'data-field': 'state' })]),
        cell(String(r[col.attempts]), 'num'), cell(r[col.worker] || '–'), cell(r[col.device] || '–'),
        cell((r[col.epoch] || 0) + '/' + (r[col.of] || '?'), 'num', { 'data-field': 'epoch' }),
        cell(pct(r[col.val_accuracy]), 'num', { 'data-field': 'val', 'data-value': r[col.val_accuracy] }),
        cell(pct(r[col.test_accuracy]), 'num', { 'data-field': 'test', 'data-value': r[col.test_accuracy] }),
      ]);
      tr.addEventListener('click', () => select(id));
      return tr;
    }));
    const first = page.matched ? page.offset + 1 : 0;
    const last = page.offset + page.rows.length;
    $('#page-info').textContent = first + '–' + last + ' of ' + page.matched + ' matching (' + page.total + ' jobs)';
    $('#prev').disabled = page.offset === 0;
    $('#next').disabled = last >= page.matched;
    for (const th of document.querySelectorAll('#jobs th[data-sort]')) {
      th.classList.toggle('sorted-asc', th.dataset.sort === state.sort && state.dir === 'asc');
      th.classList.toggle('sorted-desc', th.dataset.sort === state.sort && state.dir === 'desc');
    }
  }

  // Refetches the visible page and the selected job; one request at a time.
  async function refresh() {
    if (state.refreshing) { state.again = true; return; }
    state.refreshing = true;
    try {
      do {
        state.again = false;
        try {
          renderJobs(await api('/api/jobs?' + jobsQuery()));
          if (state.selected) await loadDetail(state.selected);
        } catch (err) {
          showError(String(err.message || err));
        }
      } while (state.again);
    } finally {
      state.refreshing = false;
    }
  }

  // ---- one job's learning curves
  async function select(id) {
    state.selected = id;
    for (const tr of document.querySelectorAll('#jobs tbody tr')) tr.classList.toggle('selected', tr.dataset.job === id);
    try { await loadDetail(id); } catch (err) { $('#detail-error').hidden = false; $('#detail-error').textContent = String(err.message || err); }
  }

  async function loadDetail(id) {
    const d = await api('/api/job?id=' + encodeURIComponent(id));
    if (state.selected !== id) return;
    $('#detail').hidden = false;
    $('#detail-error').hidden = true;
    $('#detail-id').textContent = d.job.slice(0, 16);
    $('#detail-meta').textContent = d.variant + ' · seed ' + d.seed + ' · fold ' + d.fold + ' · ' + d.protocol + ' · ' + d.state +
      (d.best_epoch ? ' · best epoch ' + d.best_epoch + ', test ' + pct(d.test_accuracy) : '') + (d.error ? ' · error: ' + d.error : '');
    $('#detail').dataset.job = d.job;
    $('#detail').dataset.epochs = String(d.epoch.length);
    chart($('#chart-loss'), d.epoch, [
      { name: 'train loss', values: d.train_loss, color: '#2f6fde' },
      { name: 'val loss', values: d.val_loss_curve, color: '#d08700' },
    ], null, d.best_epoch);
    chart($('#chart-acc'), d.epoch, [
      { name: 'train acc', values: d.train_accuracy, color: '#2f6fde' },
      { name: 'val acc', values: d.val_accuracy_curve, color: '#d08700' },
      { name: 'test acc', values: d.test_accuracy_curve, color: '#1f9d55' },
    ], [0, 1], d.best_epoch);
    rateTable($('#detail-rates'), d.firing_rates || [], d.firing_rates_epoch);
  }

  // The last epoch's firing rates: each LIF layer's mean spikes per neuron
  // per time step in training and evaluation (text nodes only).
  function rateTable(root, rates, epoch) {
    root.replaceChildren();
    if (!rates.length) return;
    const rate = (v) => (v === null || v === undefined ? '–' : (100 * v).toFixed(2) + ' %');
    const rows = rates.map((r) => el('tr', { 'data-layer': r.layer, class: r.train === 0 ? 'silent' : null }, [
      el('td', {}, [el('code', { text: r.layer })]),
      cell(rate(r.train), 'num', { 'data-field': 'train', 'data-value': r.train }),
      cell(rate(r.eval), 'num', { 'data-field': 'eval', 'data-value': r.eval }),
    ]));
    root.append(el('table', { class: 'rates' }, [
      el('caption', { text: 'firing rates, epoch ' + epoch + ' (spikes per neuron per time step)' }),
      el('thead', {}, [el('tr', {}, ['LIF layer', 'train', 'eval'].map((h) => el('th', { text: h })))]),
      el('tbody', {}, rows),
    ]));
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A line chart of `series` over `xs`; `range` fixes the y range (else from the data).
  function chart(host, xs, series, range, best) {
    const W = 480, H = 230, L = 44, R = 10, T = 10, B = 52;
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    const shown = series.filter((s) => s.values.some((v) => v !== null && v !== undefined && isFinite(v)));
    const all = shown.flatMap((s) => s.values.filter((v) => v !== null && isFinite(v)));
    let [lo, hi] = range || [Math.min(0, ...all), Math.max(...all, 1e-9)];
    if (hi <= lo) hi = lo + 1;
    const x0 = xs.length ? xs[0] : 1, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const y = lo + ((hi - lo) * i) / 4;
      root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: py(y), y2: py(y) }));
      root.append(svg('text', { x: L - 4, y: py(y) + 3, 'text-anchor': 'end' }, range ? (100 * y).toFixed(0) + '%' : y.toPrecision(2)));
    }
    root.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    root.append(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    const step = Math.max(1, Math.ceil((x1 - x0) / 8));
    for (let x = x0; x <= x1; x += step) root.append(svg('text', { x: px(x), y: H - B + 14, 'text-anchor': 'middle' }, String(x)));
    root.append(svg('text', { x: (L + W - R) / 2, y: H - B + 26, 'text-anchor': 'middle' }, 'epoch'));
    if (best) root.append(svg('line', { class: 'best', x1: px(best), x2: px(best), y1: T, y2: H - B }));
    shown.forEach((s, k) => {
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || !isFinite(v)) { pen = false; return; }
        d += (pen ? 'L' : 'M') + px(xs[i]).toFixed(1) + ' ' + py(v).toFixed(1);
        pen = true;
      });
      if (xs.length === 1 && d) d += 'h1';
      root.append(svg('path', { class: 'series', d: d, stroke: s.color, 'data-series': s.name, 'data-points': String(s.values.filter((v) => v !== null).length) }));
      const lx = L + 8 + k * 110;
      root.append(svg('rect', { x: lx, y: H - 9, width: 10, height: 3, fill: s.color }));
      root.append(svg('text', { x: lx + 14, y: H - 5 }, s.name));
    });
    if (!xs.length) root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no epoch reported yet'));
    host.replaceChildren(root);
  }

  // ---- live updates: EventSource reconnects by itself; a closed one is replaced.
  function connect() {
    const conn = $('#connection');
    const es = new EventSource('/api/events');
    es.addEventListener('overview', (ev) => {
      try { onOverview(JSON.parse(ev.data)); } catch (err) { showError('Bad update: ' + err); }
    });
    es.onopen = () => {
      $('#banner').hidden = true;
      conn.textContent = 'live';
      conn.className = 'conn conn-live';
    };
    es.onerror = () => {
      $('#banner').hidden = false;
      conn.textContent = 'reconnecting';
      conn.className = 'conn conn-down';
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        // A refused stream (e.g. 401) ends the EventSource: ask the API why, then retry.
        api('/api/overview').then(() => showError(''), (err) => showError(String(err.message || err)));
        setTimeout(connect, 2000);
      }
    };
  }

  // ---- controls
  $('#filters').addEventListener('input', (ev) => {
    if (ev.target.name === 'experiment') state.experiment = ev.target.value;
    state.offset = 0;
    refresh();
  });
  $('#filters').addEventListener('submit', (ev) => ev.preventDefault());
  for (const th of document.querySelectorAll('#jobs th[data-sort]')) {
    th.addEventListener('click', () => {
      const c = th.dataset.sort;
      if (state.sort === c) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
      else { state.sort = c; state.dir = 'asc'; }
      state.offset = 0;
      refresh();
    });
  }
  $('#prev').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - Number($('#f-limit').value));
    refresh();
  });
  $('#next').addEventListener('click', () => {
    state.offset += Number($('#f-limit').value);
    refresh();
  });

  setInterval(tick, 1000);
  connect();
})();
