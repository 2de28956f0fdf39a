// OpenTMR dashboard: plain JavaScript over the management HTTP's JSON routes (docs/management-http.md), no framework,
// nothing loaded from elsewhere. It polls /tmr/status and, by the component it names, the other read routes; the
// recent-events feed is what changed between two polls. Force-release sends DELETE /tmr/handles/{id} with the admin
// token, asked for once and kept in this tab's sessionStorage.
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const TIMEOUT_MS = 5000;
  const PAGE = 100;
  const MAX_EVENTS = 100;
  const TOKEN_KEY = 'opentmr.adminToken';

  const state = {
    component: null,   // 'node' or 'backend', from /tmr/status
    previous: null,    // the last poll's answers, for the events feed
    failing: {},       // route -> message while it fails
    answered: {},      // route -> true once it has answered (then the page shows its last answer)
    offset: 0,         // handles page
    total: 0,
    timer: null,
    polling: false,
    unreachable: false, // every route failed without an answer at the last poll
    releasing: null,   // the handle row the dialog is about
  };

  const $ = (id) => document.getElementById(id);

  class RouteError extends Error {
    constructor(route, status, message) {
      super(message);
      this.route = route;
      this.status = status;
    }

    describe() {
      return (this.status ? 'HTTP ' + this.status + ': ' : '') + this.message;
    }
  }

  /** A JSON route's answer; a RouteError with the server's JSON error message when it fails. */
  async function call(method, route, headers) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(route, {
          method: method, cache: 'no-store', signal: controller.signal,
          headers: Object.assign({Accept: 'application/json'}, headers || {}),
        });
      } catch (e) {
        throw new RouteError(route, 0, e.name === 'AbortError'
          ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s'
          : 'cannot reach ' + location.host + ' (' + e.message + ')');
      }
      let body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      if (!response.ok) {
        const error = body && body.error ? body.error : null;
        const message = error && error.message ? error.message : (response.statusText || 'failed');
        throw new RouteError(route, response.status,
          message + (error && error.code ? ' (CodeMeter error ' + error.code + ')' : ''));
      }
      if (body === null) {
        throw new RouteError(route, response.status, 'the answer is not JSON');
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  function settle(route) {
    return call('GET', route).then((value) => ({ok: true, value: value}), (error) => ({
      ok: false, error: error instanceof RouteError ? error : new RouteError(route, 0, String(error)),
    }));
  }

  // --- DOM helpers: text only, never HTML from the server --------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) {
        continue;
      }
      if (key === 'class') {
        node.className = value;
      } else if (key.startsWith('data-')) {
        node.setAttribute(key, String(value));
      } else if (key === 'onclick') {
        node.addEventListener('click', value);
      } else {
        node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child !== undefined && child !== null) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function text(value) {
    return value === undefined || value === null || value === '' ? '—' : String(value);
  }

  function when(iso) {
    return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
  }

  function clock(date) {
    return date.toTimeString().slice(0, 8);
  }

  function duration(seconds) {
    if (seconds === undefined || seconds === null) {
      return '—';
    }
    const d = Math.floor(seconds / 86400);
    const h = Math.floor(seconds % 86400 / 3600);
    const m = Math.floor(seconds % 3600 / 60);
    const s = seconds % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + s + 's';
  }

  function facts(list, pairs) {
    list.replaceChildren(...pairs.flatMap(([label, value, key]) =>
      [el('dt', {}, label), el('dd', {'data-fact': key || label}, text(value))]));
  }

  function routeError(route, error) {
    for (const box of document.querySelectorAll('.route-error')) {
      const base = box.getAttribute('data-route');
      if (route === base || route.startsWith(base + '?')) {
        box.hidden = !error;
        box.textContent = error ? 'GET ' + route + ' failed — ' + error.describe()
          + (state.answered[base] ? '. Shown below: the last answer it gave.' : '.') : '';
      }
    }
  }

  // --- rendering --------------------------------------------------------------------------------------------

  function renderStatus(status) {
    state.component = status.component;
    document.body.dataset.component = status.component;
    const role = $('role');
    if (status.component === 'node') {
      $('title').textContent = 'node ' + text(status.name);
      role.textContent = status.role;
      role.className = 'badge ' + status.role;
      const lease = status.lease || {};
      const replication = status.replication || {};
      const backends = status.backends || {};
      facts($('status'), [
        ['role', status.role, 'role'],
        ['serving', status.serving ? 'yes' : 'no', 'serving'],
        ['address', status.address, 'address'],
        ['virtual container', status.virtualContainer, 'virtualContainer'],
        ['lease', lease.held ? 'held, epoch ' + lease.epoch + ', ' + lease.grants + ' grants'
          : 'not held (' + text(lease.grants) + ' grants)', 'lease'],
        ['epoch', lease.epoch, 'epoch'],
        ['replication', replication.state + (replication.standby ? ', standby ' + replication.standby : '')
          + (replication.lagSeconds !== null && replication.lagSeconds !== undefined
            ? ', lag ' + replication.lagSeconds + ' s' : ''), 'replication'],
        ['backends up', backends.up + ' of ' + backends.total, 'backendsUp'],
        ['open handles', status.openHandles, 'openHandles'],
        ['fail-overs', status.failovers, 'failovers'],
        ['integrity warnings', status.integrityWarnings, 'integrityWarnings'],
        ['up for', duration(status.uptimeSeconds) + ' (since ' + when(status.startedAt) + ')', 'uptime'],
      ]);
    } else {
      $('title').textContent = 'backend ' + text(status.container);
      role.textContent = status.ready ? 'backend' : 'backend, not ready';
      role.className = 'badge backend';
      const lease = status.lease || {};
      facts($('status'), [
        ['component', 'backend', 'role'],
        ['container', status.container, 'container'],
        ['CmActId', status.cmActId, 'cmActId'],
        ['address', status.address, 'address'],
        ['active lease', lease.holder ? 'held by ' + lease.holder + ', epoch ' + lease.epoch
          : 'none (highest epoch ' + text(lease.epoch) + ')', 'lease'],
        ['peers', status.peers && status.peers.enabled ? 'cluster secret set' : 'no cluster secret', 'peers'],
        ['open handles', status.openHandles, 'openHandles'],
        ['seats held for nodes', status.allocations, 'allocations'],
        ['borrows', status.borrows, 'borrows'],
        ['up for', duration(status.uptimeSeconds) + ' (since ' + when(status.startedAt) + ')', 'uptime'],
      ]);
    }
    $('backends-section').hidden = status.component !== 'node';
    $('copies-heading').textContent = status.component === 'node' ? 'copies' : 'held for nodes';
  }

  function renderBackends(answer) {
    $('backends').tBodies[0].replaceChildren(...answer.backends.map((b) => el('tr',
      {'class': b.up ? 'up' : 'down', 'data-backend': b.backend, 'data-up': b.up},
      el('td', {class: 'num'}, b.backend),
      el('td', {}, el('span', {class: 'dot'}), b.up ? 'up' : 'down'),
      el('td', {}, b.address),
      el('td', {}, text(b.container)),
      el('td', {class: 'num'}, text(b.grantEpoch)),
      el('td', {class: 'num'}, text(b.copies)),
      el('td', {}, b.differing && b.differing.length ? b.differing.join(', ') : '—'),
      el('td', {}, text(b.down)))));
  }

  function renderContainers(answer) {
    const c = answer.containers[0] || {};
    $('container-heading').textContent = c.kind === 'virtual' ? 'Virtual container' : 'Container';
    if (c.kind === 'virtual') {
      facts($('container'), [
        ['serial', c.serial, 'serial'],
        ['CmActId', c.cmActId, 'cmActId'],
        ['licenses', c.licenses + ' (' + c.listed + ' listed)', 'licenses'],
        ['reconciled', c.reconciled ? 'yes' : 'no', 'reconciled'],
        ['inventoried backends', (c.inventoried || []).join(', '), 'inventoried'],
        ['backed by', (c.backing || []).map((b) => b.backend + ': ' + text(b.container)).join(', '), 'backing'],
      ]);
    } else {
      facts($('container'), [
        ['serial', c.serial, 'serial'],
        ['CmActId', c.cmActId, 'cmActId'],
        ['product items', c.productItems, 'productItems'],
      ]);
    }
  }

  function seatBar(seats) {
    const used = seats ? seats.used : null;
    const total = seats ? seats.total : null;
    if (total === null || total === undefined) {
      return el('div', {class: 'seats'}, text(used) + ' used, total unknown (no two copies agree)');
    }
    const share = total > 0 ? Math.min(100, Math.round(100 * used / total)) : 100;
    const fill = el('span', {});
    fill.style.width = share + '%'; // through the CSSOM: the page's CSP allows no inline style attribute
    return el('div', {class: 'seats'},
      el('div', {class: 'bar' + (used >= total ? ' full' : ''), title: used + ' of ' + total + ' seats'}, fill),
      el('span', {class: 'seat-count'}, used + ' / ' + total));
  }

  function renderLicenses(answer) {
    const node = state.component === 'node';
    $('licenses').tBodies[0].replaceChildren(...answer.licenses.map((l) => {
      const copies = l.copies;
      return el('tr', {
        'data-license': l.license,
        'data-used': l.seats ? l.seats.used : '',
        'data-total': l.seats && l.seats.total !== null ? l.seats.total : '',
        'data-units': l.units && l.units.counter ? l.units.left : '',
      },
      el('td', {}, l.license),
      el('td', {}, text(l.text)),
      el('td', {}, seatBar(l.seats)),
      el('td', {class: 'num'}, text(l.handles)),
      el('td', {class: 'num units'}, l.units && l.units.counter ? text(l.units.left) : '—'),
      node
        ? el('td', {class: 'copies-' + (copies ? copies.counted : 0)},
          copies ? copies.counted + ' of 3 (backends ' + copies.backends.join(', ') + '; ' + copies.usable
            + ' usable)' : '—')
        : el('td', {class: 'num'}, text(l.allocations)),
      el('td', {}, when(l.expiresAt)),
      el('td', {class: l.integrityWarnings ? 'warn' : ''}, node ? text(l.integrityWarnings) : '—'));
    }));
  }

  function renderHandles(answer) {
    state.total = answer.total;
    const shown = answer.handles.length;
    $('handles-count').textContent = answer.total === 0 ? '(none)'
      : '(' + (answer.offset + 1) + '–' + (answer.offset + shown) + ' of ' + answer.total + ')';
    $('prev-page').disabled = answer.offset === 0;
    $('next-page').disabled = answer.offset + shown >= answer.total;
    $('handles').tBodies[0].replaceChildren(...answer.handles.map((h) => el('tr',
      {'data-handle-id': h.id, 'data-kind': h.kind, 'data-license': h.license},
      el('td', {class: 'num'}, h.id),
      el('td', {}, h.kind),
      el('td', {}, h.license),
      el('td', {}, text(h.user)),
      el('td', {}, text(h.host)),
      el('td', {}, text(h.mode)),
      el('td', {}, when(h.openedAt)),
      el('td', {}, when(h.lastActivityAt)),
      el('td', {}, h.kind === 'handle'
        ? el('button', {type: 'button', class: 'release', onclick: () => askRelease(h)}, 'Force release')
        : el('span', {class: 'muted'}, 'a TMR node\'s seat: release it on the node')))));
  }

  // --- the recent-events feed: what changed between two polls ---------------------------------------------

  function addEvent(message, kind) {
    const list = $('events');
    list.prepend(el('li', {class: kind || ''}, el('time', {}, clock(new Date())), message));
    while (list.children.length > MAX_EVENTS) {
      list.lastElementChild.remove();
    }
  }

  function byKey(list, key) {
    const map = new Map();
    for (const item of list || []) {
      map.set(item[key], item);
    }
    return map;
  }

  function changes(before, now) {
    if (!before) {
      return;
    }
    const s0 = before.status;
    const s1 = now.status;
    if (s0 && s1 && s0.component === 'node' && s1.component === 'node') {
      if (s0.role !== s1.role) {
        addEvent('Role ' + s0.role + ' → ' + s1.role, s1.role === 'active' ? 'ok' : 'bad');
      }
      const e0 = s0.lease ? s0.lease.epoch : null;
      const e1 = s1.lease ? s1.lease.epoch : null;
      if (e0 !== e1 && e1 !== null) {
        addEvent('Lease epoch ' + e1 + (e0 === null ? ' (held no lease before)' : ' (was ' + e0 + ')'));
      }
      if (s1.failovers > s0.failovers) {
        addEvent('Fail-over: the active role came to this node', 'ok');
      }
      if (s1.integrityWarnings > s0.integrityWarnings) {
        addEvent((s1.integrityWarnings - s0.integrityWarnings) + ' new integrity warning(s)', 'bad');
      }
      const r0 = s0.replication || {};
      const r1 = s1.replication || {};
      if (r0.state !== r1.state) {
        addEvent('Replication ' + r0.state + ' → ' + r1.state);
      }
    }
    if (before.backends && now.backends) {
      const old = byKey(before.backends.backends, 'backend');
      for (const b of now.backends.backends) {
        const was = old.get(b.backend);
        if (was && was.up !== b.up) {
          addEvent('Backend ' + b.backend + ' (' + b.address + ') ' + (b.up ? 'up' : 'down'
            + (b.down ? ': ' + b.down : '')), b.up ? 'ok' : 'bad');
        }
      }
    }
    if (before.licenses && now.licenses) {
      const old = byKey(before.licenses.licenses, 'license');
      for (const l of now.licenses.licenses) {
        const was = old.get(l.license);
        if (!was) {
          addEvent('License ' + l.license + ' appeared');
          continue;
        }
        if (was.seats && l.seats && was.seats.used !== l.seats.used) {
          addEvent('License ' + l.license + ': seats used ' + was.seats.used + ' → ' + l.seats.used);
        }
        if (was.copies && l.copies && was.copies.counted !== l.copies.counted) {
          addEvent('License ' + l.license + ': copies counted ' + was.copies.counted + ' → ' + l.copies.counted,
            l.copies.counted < was.copies.counted ? 'bad' : 'ok');
        }
        if (was.units && l.units && was.units.counter && was.units.left !== l.units.left) {
          addEvent('License ' + l.license + ': units left ' + text(was.units.left) + ' → ' + text(l.units.left));
        }
      }
    }
    if (before.handles && now.handles && before.handles.offset === now.handles.offset) {
      const old = byKey(before.handles.handles, 'id');
      const current = byKey(now.handles.handles, 'id');
      for (const [id, h] of current) {
        if (!old.has(id)) {
          addEvent('Handle ' + id + ' opened: ' + h.license + ' by ' + text(h.user) + '@' + text(h.host));
        }
      }
      for (const [id, h] of old) {
        if (!current.has(id)) {
          addEvent('Handle ' + id + ' gone: ' + h.license + ' of ' + text(h.user) + '@' + text(h.host));
        }
      }
    }
  }

  // --- polling ----------------------------------------------------------------------------------------------

  async function poll() {
    if (state.polling) {
      return;
    }
    state.polling = true;
    clearTimeout(state.timer);
    try {
      const now = {};
      const failures = [];
      const status = await settle('/tmr/status');
      if (status.ok) {
        now.status = status.value;
        renderStatus(status.value);
        if (!state.previous) {
          addEvent('Watching ' + $('title').textContent + (status.value.role ? ', role ' + status.value.role : ''));
        }
      }
      const routes = {
        containers: '/tmr/containers',
        licenses: '/tmr/licenses',
        handles: '/tmr/handles?offset=' + state.offset + '&limit=' + PAGE,
      };
      if (state.component === 'node') {
        routes.backends = '/tmr/backends';
      }
      const names = Object.keys(routes);
      const answers = await Promise.all(names.map((name) => settle(routes[name])));
      const renderers = {
        containers: renderContainers, licenses: renderLicenses, handles: renderHandles, backends: renderBackends,
      };
      const all = [['status', '/tmr/status', status]].concat(names.map((name, i) => [name, routes[name], answers[i]]));
      // Nothing answered at all (the process is gone, or the network): one event, not one per route.
      const unreachable = all.every(([, , answer]) => !answer.ok && answer.error.status === 0);
      if (unreachable !== state.unreachable) {
        addEvent(unreachable ? 'The server does not answer — ' + status.error.describe() : 'The server answers again',
          unreachable ? 'bad' : 'ok');
        state.failing = {};
      }
      state.unreachable = unreachable;
      for (const [name, route, answer] of all) {
        const base = route.split('?')[0];
        if (answer.ok) {
          now[name] = answer.value;
          if (renderers[name]) {
            renderers[name](answer.value);
          }
          if (state.failing[base]) {
            addEvent('GET ' + base + ' answers again', 'ok');
          }
          delete state.failing[base];
          state.answered[base] = true;
          routeError(route, null);
        } else {
          failures.push(answer.error);
          routeError(route, answer.error);
          if (!state.failing[base] && !unreachable) {
            addEvent('GET ' + base + ' failed — ' + answer.error.describe(), 'bad');
          }
          if (!unreachable) {
            state.failing[base] = answer.error.describe();
          }
        }
      }
      const banner = $('banner');
      if (unreachable) {
        banner.hidden = false;
        banner.textContent = 'The server does not answer: ' + failures[0].describe()
          + '. What is shown is from the last answers it gave; retrying every ' + REFRESH_MS / 1000 + ' s.';
        $('role').textContent = 'unreachable';
        $('role').className = 'badge unreachable';
      } else if (failures.length > 0) {
        banner.hidden = false;
        banner.textContent = failures.length + ' of ' + all.length + ' routes failed: '
          + failures.map((f) => f.route.split('?')[0] + ' (' + f.describe() + ')').join('; ');
      } else {
        banner.hidden = true;
        banner.textContent = '';
      }
      // Only what answered is compared: a route that failed keeps its last answer for the next comparison.
      const merged = Object.assign({}, state.previous || {}, now);
      changes(state.previous, merged);
      state.previous = merged;
      $('polled').textContent = 'updated ' + clock(new Date());
    } finally {
      state.polling = false;
      document.body.dataset.polls = String(Number(document.body.dataset.polls || '0') + 1);
      schedule();
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if ($('auto').checked) {
      state.timer = setTimeout(poll, REFRESH_MS);
    }
  }

  // --- force release ----------------------------------------------------------------------------------------

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function askRelease(handle) {
    state.releasing = handle;
    $('release-what').textContent = 'Handle ' + handle.id + ' of license ' + handle.license + ', held by '
      + text(handle.user) + '@' + text(handle.host) + '.';
    const token = storedToken();
    $('token-label').hidden = !!token;
    $('token').value = '';
    $('release-error').hidden = true;
    $('release-confirm').disabled = false;
    $('release-dialog').showModal();
    (token ? $('release-confirm') : $('token')).focus();
  }

  async function release(event) {
    event.preventDefault();
    const handle = state.releasing;
    if (!handle) {
      return;
    }
    let token = storedToken();
    if (!token) {
      token = $('token').value.trim();
      if (!token) {
        showReleaseError('Enter the admin token (the file given with --admin-token-file).');
        return;
      }
    }
    $('release-confirm').disabled = true;
    try {
      await call('DELETE', '/tmr/handles/' + encodeURIComponent(handle.id), {Authorization: 'Bearer ' + token});
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch (e) {
        // A browser without session storage asks again next time.
      }
      $('release-dialog').close();
      state.releasing = null;
      addEvent('Handle ' + handle.id + ' force-released from this page (' + handle.license + ' of '
        + text(handle.user) + '@' + text(handle.host) + ')', 'ok');
      poll();
    } catch (e) {
      const error = e instanceof RouteError ? e : new RouteError('/tmr/handles', 0, String(e));
      if (error.status === 401 || error.status === 403) {
        try {
          sessionStorage.removeItem(TOKEN_KEY);
        } catch (ignored) {
          // nothing kept
        }
        $('token-label').hidden = false;
        $('token').value = '';
        $('token').focus();
      }
      addEvent('Force release of handle ' + handle.id + ' refused — ' + error.describe(), 'bad');
      showReleaseError('Refused — ' + error.describe());
    } finally {
      $('release-confirm').disabled = false;
    }
  }

  function showReleaseError(message) {
    $('release-error').textContent = message;
    $('release-error').hidden = false;
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('release-form').addEventListener('submit', release);
    $('release-cancel').addEventListener('click', () => {
      state.releasing = null;
      $('release-dialog').close();
    });
    $('auto').addEventListener('change', () => ($('auto').checked ? poll() : clearTimeout(state.timer)));
    $('prev-page').addEventListener('click', () => {
      state.offset = Math.max(0, state.offset - PAGE);
      poll();
    });
    $('next-page').addEventListener('click', () => {
      state.offset += PAGE;
      poll();
    });
    poll();
  });
}());
