// The dashboard shell: token gate, hash router, live refresh.
import { api, ApiError, setToken, takeTokenFromLocation, token } from './api.js';
import { h, swap } from './dom.js';
import { clock } from './format.js';
import * as overview from './views/overview.js';
import * as incidents from './views/incidents.js';
import * as traces from './views/traces.js';
import * as exceptions from './views/exceptions.js';
import * as logs from './views/logs.js';

const REFRESH_MS = 2000;

const routes = [
  { re: /^\/?$/, nav: 'overview', view: overview.overview },
  { re: /^\/incidents\/?$/, nav: 'incidents', view: incidents.list },
  { re: /^\/incidents\/([^/]+)$/, nav: 'incidents', view: incidents.detail },
  { re: /^\/traces\/?$/, nav: 'traces', view: traces.list },
  { re: /^\/traces\/([0-9a-fA-F]+)$/, nav: 'traces', view: traces.detail },
  { re: /^\/exceptions\/?$/, nav: 'exceptions', view: exceptions.list },
  { re: /^\/logs\/?$/, nav: 'logs', view: logs.list },
];

const main = document.getElementById('main');
const status = document.getElementById('status');
const updated = document.getElementById('updated');
const live = document.getElementById('live');
const signout = document.getElementById('signout');

let current = null;
let timer = null;
let busy = false;
let generation = 0;

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const [path, q] = raw.split('?');
  return { path, params: new URLSearchParams(q || '') };
}

/** Navigates to `#path?params` (replacing the history entry when `replace`). */
export function navigate(path, params, replace = false) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString() : '';
  const hash = `#${path}${q ? `?${q}` : ''}`;
  if (replace) {
    history.replaceState(null, '', hash);
  } else {
    location.hash = hash;
  }
}

function say(text, tone = 'info') {
  swap(status, text ? h('p', { class: `status-${tone}` }, text) : null);
}

function showTokenForm(message) {
  stop();
  current = null;
  signout.hidden = true;
  document.title = 'Sign in · aiops';
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    spellcheck: 'false', 'aria-describedby': 'token-help',
  });
  const error = h('p', { id: 'token-error', class: 'error', role: 'alert' }, message || '');
  const form = h('form', { class: 'card signin', onsubmit: async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    try {
      await api('health');
      route();
    } catch (err) {
      setToken('');
      error.textContent = err instanceof ApiError && err.status === 401
        ? 'That token was refused. Check the token printed by `aiops up` or AIOPS_API_TOKEN.'
        : `Cannot check the token: ${err.message}`;
      input.focus();
    }
  } },
  h('h1', {}, 'Sign in to the dashboard'),
  h('p', {}, 'The management API needs its bearer token. It is kept only in this tab (sessionStorage) until you close it.'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { id: 'token-help', class: 'muted' }, 'Printed once by ', h('code', {}, 'aiops up'), ' when it generates one, or set with ', h('code', {}, 'AIOPS_API_TOKEN'), ' / ', h('code', {}, '[platform] api_token'), '.'),
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Open dashboard'));
  swap(main, form);
  say('');
  input.focus();
}

function highlightNav(nav) {
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.route === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function refresh() {
  if (!current || busy) return;
  busy = true;
  const mine = generation;
  try {
    await current.refresh();
    if (mine !== generation) return;
    updated.textContent = `updated ${clock(Date.now())}`;
    say('');
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof ApiError && err.status === 401) {
      setToken('');
      showTokenForm('The platform refused the token (it may have restarted with a new one).');
      return;
    }
    say(`Could not refresh: ${err.message}`, 'error');
  } finally {
    busy = false;
  }
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

function start() {
  stop();
  if (live.checked) {
    timer = setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }
}

async function route() {
  if (!token()) {
    showTokenForm();
    return;
  }
  signout.hidden = false;
  const { path, params } = parseHash();
  const match = routes.map((r) => [r, path.match(r.re)]).find(([, m]) => m);
  generation++;
  if (current?.destroy) current.destroy();
  if (!match) {
    current = null;
    highlightNav('');
    swap(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ', h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  const [r, m] = match;
  highlightNav(r.nav);
  const root = h('div', { class: 'view' });
  swap(main, root);
  current = r.view(root, { args: m.slice(1), params, navigate });
  document.title = `${current.title || 'aiops'} · aiops`;
  const mine = generation;
  await refresh();
  if (mine !== generation) return;
  // Move focus to the page heading so screen readers announce the new page.
  const heading = main.querySelector('h1');
  if (heading && !main.contains(document.activeElement)) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  start();
}

live.addEventListener('change', () => {
  if (live.checked) refresh();
  start();
});
signout.addEventListener('click', () => {
  setToken('');
  showTokenForm('Token forgotten.');
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});
window.addEventListener('hashchange', () => {
  // A sign-in link pasted into an open tab.
  takeTokenFromLocation();
  route();
});
takeTokenFromLocation();
route();
