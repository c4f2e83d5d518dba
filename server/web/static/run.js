// The run page: links to log lines, log search, and, while the run goes,
// the live updates (Server-Sent Events): log lines, stage states in the
// graph and the table, the counters (counted from the table, so both
// agree), the failure summary and the timeline. When the run ends the page
// reloads to show the finished run. Without JavaScript the page is
// complete as served.
(function () {
  var root = document.getElementById('run');
  if (!root) return;
  var id = root.dataset.id;
  function sel(attr, label) { return '[' + attr + '="' + CSS.escape(label) + '"]'; }

  // #ANCHOR-LN: open the log, mark the line, bring it into view.
  // #ANCHOR-LN-LM marks lines N to M; shift-click on a line number after
  // marking one in the same log makes such a link.
  function lineRange(h) {
    var m = /^(.*)-L(\d+)-L(\d+)$/.exec(h);
    if (!m) return null;
    var a = +m[2], b = +m[3];
    if (a > b) { var t = a; a = b; b = t; }
    var els = [];
    for (var n = a; n <= b; n++) {
      var el = document.getElementById(m[1] + '-L' + n);
      if (el) els.push(el);
    }
    return els;
  }
  function showHash() {
    var h = decodeURIComponent(location.hash.slice(1));
    document.querySelectorAll('.line.hl').forEach(function (l) { l.classList.remove('hl'); });
    if (!h) return;
    // An element of that id first: a label may itself end in -LN.
    var one = document.getElementById(h);
    var els = one ? [one] : (lineRange(h) || []);
    if (!els.length) return;
    var d = els[0].closest('details');
    if (d) d.open = true;
    els.forEach(function (el) { if (el.classList.contains('line')) el.classList.add('hl'); });
    els[0].scrollIntoView({ block: 'center' });
  }
  window.addEventListener('hashchange', showHash);
  showHash();
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('#logs a.ln');
    if (!a || !ev.shiftKey) return;
    var cur = decodeURIComponent(location.hash.slice(1)).match(/^(.*)-L(\d+)(?:-L\d+)?$/);
    var to = a.getAttribute('href').slice(1).match(/^(.*)-L(\d+)$/);
    if (!cur || !to || cur[1] !== to[1]) return;
    ev.preventDefault();
    var lo = Math.min(+cur[2], +to[2]), hi = Math.max(+cur[2], +to[2]);
    location.hash = to[1] + '-L' + lo + '-L' + hi;
  });

  // Search: only the lines containing the text (any case) stay visible.
  var search = document.getElementById('log-search');
  var matches = document.getElementById('log-matches');
  function filterLine(line, q) {
    var hit = !q || line.querySelector('.tx').textContent.toLowerCase().indexOf(q) >= 0;
    line.classList.toggle('miss', !hit);
    return hit;
  }
  function runSearch() {
    var q = search.value.toLowerCase();
    var n = 0;
    document.querySelectorAll('#logs details.log').forEach(function (d) {
      var k = 0;
      d.querySelectorAll('.line').forEach(function (line) { if (filterLine(line, q) && q) k++; });
      if (q && k) d.open = true;
      d.classList.toggle('nomatch', !!q && !k);
      n += k;
    });
    matches.textContent = q ? n + ' matching line' + (n === 1 ? '' : 's') : '';
  }
  if (search) search.addEventListener('input', runSearch);

  if (root.dataset.live !== '1' || !window.EventSource) return;

  function logFor(label) {
    var pre = document.querySelector('#logs pre' + sel('data-label', label));
    if (pre) return pre;
    var d = document.createElement('details');
    d.className = 'log';
    d.open = true;
    var anchor = 'log-' + label.replace(/[^a-zA-Z0-9_-]/g, function (c) { return '.' + c.codePointAt(0).toString(16); });
    d.id = anchor;
    var s = document.createElement('summary');
    s.textContent = label || 'run';
    pre = document.createElement('pre');
    pre.dataset.label = label;
    pre.dataset.anchor = anchor;
    d.appendChild(s);
    d.appendChild(pre);
    document.getElementById('logs').appendChild(d);
    return pre;
  }
  function addLine(e) {
    var pre = logFor(e.label || '');
    var last = pre.lastElementChild;
    var n = last ? parseInt(last.querySelector('.ln').textContent, 10) + 1 : 1;
    var lid = pre.dataset.anchor + '-L' + n;
    var div = document.createElement('div');
    div.className = 'line';
    div.id = lid;
    var a = document.createElement('a');
    a.className = 'ln';
    a.href = '#' + lid;
    a.textContent = n;
    var ts = document.createElement('span');
    ts.className = 'ts';
    ts.textContent = e.time || '';
    var tx = document.createElement('span');
    tx.className = 'tx';
    tx.innerHTML = e.html; // rendered and escaped by the server
    div.appendChild(a);
    div.appendChild(ts);
    div.appendChild(tx);
    pre.appendChild(div);
    if (search && search.value) filterLine(div, search.value.toLowerCase());
    pre.scrollTop = pre.scrollHeight;
  }

  // The stage table: a row per stage, data-state its state.
  function row(label) {
    var tr = document.querySelector('#stages tbody tr' + sel('data-label', label));
    if (tr) return tr;
    tr = document.createElement('tr');
    tr.dataset.label = label;
    ['name', 'state', 'key', 'dur', 'queued', 'exit', 'outputs', 'notes'].forEach(function (c) {
      var td = document.createElement('td');
      td.className = c;
      tr.appendChild(td);
    });
    var a = document.createElement('a');
    a.href = '#' + logFor(label).dataset.anchor;
    a.textContent = label;
    tr.firstChild.appendChild(a);
    document.querySelector('#stages tbody').appendChild(tr);
    return tr;
  }
  function ms(n) { return n < 1000 ? n + 'ms' : (n / 1000).toFixed(1) + 's'; }
  function note(tr, cls, text) {
    var td = tr.querySelector('td.notes');
    var div = td.querySelector('.' + cls);
    if (!div) { div = document.createElement('div'); div.className = cls; td.appendChild(div); }
    div.textContent = text;
  }
  function updateRow(e) {
    var tr = row(e.label);
    if (e.state) {
      tr.dataset.state = e.state;
      tr.querySelector('td.state').innerHTML = '<span class="badge st-' + e.state + '">' + e.state + '</span>';
    }
    if (e.key) tr.querySelector('td.key').innerHTML = '<code>' + e.key.slice(0, 10) + '</code>';
    if (e.duration_ms) tr.querySelector('td.dur').textContent = ms(e.duration_ms);
    if (e.exit_code) tr.querySelector('td.exit').textContent = e.exit_code;
    if (e.error) note(tr, 'err', e.error);
    if (e.reason) note(tr, 'why', e.reason);
  }
  // The counters are the table's rows by state.
  function recount() {
    var n = { built: 0, cached: 0, failed: 0, running: 0, skipped: 0 };
    document.querySelectorAll('#stages tbody tr').forEach(function (tr) {
      if (tr.dataset.state in n) n[tr.dataset.state]++;
    });
    Object.keys(n).forEach(function (k) {
      var el = document.getElementById('n-' + k);
      if (el) el.textContent = n[k];
    });
  }

  // The graph: a node per stage, or per package when folded (data-fold:
  // the package depth), coloured by its most telling state.
  var svg = document.getElementById('graph');
  var fold = svg && svg.dataset.fold !== undefined ? parseInt(svg.dataset.fold, 10) : -1;
  var priority = ['failed', 'running', 'interrupted', 'built', 'skipped', 'cached'];
  function pkgKey(label) {
    var p = label.replace(/^\/\//, '').split(':')[0];
    var parts = p ? p.split('/') : [];
    return '//' + parts.slice(0, fold).join('/');
  }
  function paint(label, state) {
    if (!svg) return;
    if (fold < 0) {
      var g = svg.querySelector('g.node' + sel('data-label', label));
      if (g) g.setAttribute('class', 'node st-' + state);
      return;
    }
    var key = pkgKey(label);
    var best = priority.length;
    document.querySelectorAll('#stages tbody tr').forEach(function (tr) {
      if (pkgKey(tr.dataset.label) !== key) return;
      var i = priority.indexOf(tr.dataset.state);
      if (i >= 0 && i < best) best = i;
    });
    var pg = svg.querySelector('g.node' + sel('data-pkg', key));
    if (pg) pg.setAttribute('class', 'node st-' + (best < priority.length ? priority[best] : 'none'));
  }

  // A stage that fails joins the failure summary with its last lines.
  function addFailure(e) {
    var box = document.getElementById('failure');
    if (box.querySelector('.failed-stage' + sel('data-label', e.label))) return;
    box.hidden = false;
    var pre = logFor(e.label);
    var div = document.createElement('div');
    div.className = 'failed-stage';
    div.dataset.label = e.label;
    var h = document.createElement('h3');
    var a = document.createElement('a');
    a.href = '#' + pre.dataset.anchor;
    a.innerHTML = '<code></code>';
    a.firstChild.textContent = e.label;
    h.appendChild(a);
    if (e.error) { var er = document.createElement('span'); er.className = 'err'; er.textContent = ' ' + e.error; h.appendChild(er); }
    div.appendChild(h);
    var lines = Array.prototype.slice.call(pre.querySelectorAll('.line'), -20);
    if (lines.length) {
      var t = document.createElement('pre');
      t.className = 'tail';
      lines.forEach(function (l) {
        var tl = document.createElement('a');
        tl.className = 'tl';
        tl.href = '#' + l.id;
        tl.innerHTML = '<span class="ln"></span>' + l.querySelector('.tx').innerHTML;
        tl.firstChild.textContent = l.querySelector('.ln').textContent;
        t.appendChild(tl);
        t.appendChild(document.createTextNode('\n'));
      });
      div.appendChild(t);
      var p = document.createElement('p');
      p.className = 'note';
      p.innerHTML = '<a class="full-log"></a>';
      var last = lines[lines.length - 1];
      p.firstChild.href = '#' + lines[0].id + (lines.length > 1 ? '-L' + last.querySelector('.ln').textContent : '');
      p.firstChild.textContent = 'these lines in the full log';
      div.appendChild(p);
    }
    box.appendChild(div);
  }

  // The timeline, redrawn by the server at most once a second while the
  // run goes (running bars grow).
  var timelineDirty = true;
  function refreshTimeline() {
    if (!timelineDirty) return;
    timelineDirty = false;
    fetch('/runs/' + id + '/timeline', { cache: 'no-store' }).then(function (r) { return r.ok ? r.text() : null; }).then(function (t) {
      if (t !== null) document.getElementById('timeline-box').innerHTML = t; // rendered and escaped by the server
    }).catch(function () {});
  }
  var timer = setInterval(function () {
    if (document.querySelector('#stages tbody tr[data-state="running"]')) timelineDirty = true;
    refreshTimeline();
  }, 1000);

  var es = new EventSource('/runs/' + id + '/events?after=' + root.dataset.seq);
  es.addEventListener('mc', function (m) {
    var e = JSON.parse(m.data);
    if (e.type === 'log') {
      addLine(e);
    } else if (e.type === 'run_status') {
      var b = document.getElementById('run-status');
      b.textContent = e.status;
      b.className = 'badge st-' + e.status;
    } else if (e.state) {
      updateRow(e);
      recount();
      paint(e.label, e.state);
      if (e.state === 'failed') addFailure(e);
      timelineDirty = true;
    } else if (e.reason && e.label) {
      updateRow(e);
    }
  });
  es.addEventListener('end', function () {
    es.close();
    clearInterval(timer);
    setTimeout(function () { location.reload(); }, 300);
  });
})();
