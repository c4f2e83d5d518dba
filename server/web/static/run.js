// Follows a live run: log lines, stage states and the run's status arrive
// as Server-Sent Events; when the run ends the page reloads to show the
// finished timeline. Without JavaScript the page is complete as served.
(function () {
  var root = document.getElementById('run');
  if (!root || root.dataset.live !== '1' || !window.EventSource) return;
  var id = root.dataset.id;
  function sel(attr, label) { return '[' + attr + '="' + CSS.escape(label) + '"]'; }
  function logFor(label) {
    var pre = document.querySelector('#logs pre' + sel('data-label', label));
    if (pre) return pre;
    var d = document.createElement('details');
    d.className = 'log';
    d.open = true;
    var s = document.createElement('summary');
    s.textContent = label || 'run';
    pre = document.createElement('pre');
    pre.dataset.label = label;
    d.appendChild(s);
    d.appendChild(pre);
    document.getElementById('logs').appendChild(d);
    return pre;
  }
  function setState(label, state) {
    var g = document.querySelector('#graph g.node' + sel('data-label', label));
    if (g) g.setAttribute('class', 'node st-' + state);
    var td = document.querySelector('#stages tr' + sel('data-label', label) + ' td.state');
    if (td) td.innerHTML = '<span class="badge st-' + state + '">' + state + '</span>';
  }
  var es = new EventSource('/runs/' + id + '/events?after=' + root.dataset.seq);
  es.addEventListener('mc', function (m) {
    var e = JSON.parse(m.data);
    if (e.type === 'log') {
      var pre = logFor(e.label || '');
      var div = document.createElement('div');
      div.className = 'line';
      div.innerHTML = e.html; // rendered and escaped by the server
      pre.appendChild(div);
      pre.scrollTop = pre.scrollHeight;
    } else if (e.type === 'run_status') {
      var b = document.getElementById('run-status');
      b.textContent = e.status;
      b.className = 'badge st-' + e.status;
    } else if (e.state) {
      setState(e.label, e.state);
    }
  });
  es.addEventListener('end', function () { es.close(); setTimeout(function () { location.reload(); }, 300); });
})();
