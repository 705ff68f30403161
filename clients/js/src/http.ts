import { AllSparkError } from './errors.js';

/** Pre-connection info (GET /v1/connect). */
export interface ConnectInfo {
  node_id: string;
  client_id: string;
  validation_token: string;
  expires_at: string;
  edge: { id: string; ws_url: string; proxy_url?: string };
}

/** request calls the edge's JSON API with the auth_key as a Bearer token. */
export async function request<T>(
  fetchFn: typeof fetch,
  base: string,
  authKey: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const headers: Record<string, string> = { Authorization: `Bearer ${authKey}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetchFn(base.replace(/\/+$/, '') + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new AllSparkError('unavailable', `${method} ${path}: ${(err as Error)?.message ?? err}`, { detail: err });
  }
  const text = await res.text().catch(() => '');
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = parsed?.error;
    const code = typeof e?.code === 'string' ? e.code : res.status === 401 ? 'unauthorized' : 'unavailable';
    throw new AllSparkError(code, `${method} ${path}: ${e?.message ?? res.status}`, { status: res.status });
  }
  if (parsed === undefined || typeof parsed !== 'object') {
    throw new AllSparkError('bad_frame', `${method} ${path}: answer is not JSON`, { status: res.status });
  }
  return parsed as T;
}
