// The JSON API client: bearer token from sessionStorage, problem+json errors as ApiError.

const KEY = 'aiops.api_token';

/** The token kept for this browser tab, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Keeps (or, with an empty value, forgets) the token for this tab. */
export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/**
 * Signs in from a link `…/#token=…` (as `aiops up` and the demo print): the token is in the
 * fragment, which the browser never sends to the server. It moves to sessionStorage and the
 * address bar is cleared with history.replaceState, so it stays out of history and bookmarks.
 * Answers whether a token was taken.
 */
export function takeTokenFromLocation() {
  const hash = window.location.hash.replace(/^#/, '');
  if (!hash.startsWith('token=')) return false;
  let value = '';
  try {
    value = decodeURIComponent(hash.slice('token='.length)).trim();
  } catch {
    value = '';
  }
  history.replaceState(null, '', `${window.location.pathname}${window.location.search}#/`);
  if (value) setToken(value);
  return Boolean(value);
}

/** An API answer that was not 2xx, with the problem's detail. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

/** Builds `?a=1&b=2`, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Calls `/api/v1/<path>` and answers the parsed JSON. */
export async function api(path, { method = 'GET', body, headers: extra = {} } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token() || ''}`, ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `the platform cannot be reached (${e.message})`);
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const p = await res.json();
      detail = p.detail || p.title || detail;
    } catch {
      // Not JSON: keep the status text.
    }
    throw new ApiError(res.status, detail);
  }
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** The items of a list answer, whether it is `{items}` or a bare array. */
export function items(answer) {
  if (Array.isArray(answer)) return answer;
  return (answer && Array.isArray(answer.items)) ? answer.items : [];
}

/** Like `api`, but answers `fallback` when the endpoint does not exist (404). */
export async function optional(path, fallback) {
  try {
    return await api(path);
  } catch (e) {
    if (e instanceof ApiError && [404, 405, 503].includes(e.status)) return fallback;
    throw e;
  }
}
