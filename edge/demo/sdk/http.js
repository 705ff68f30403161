import { AllSparkError } from './errors.js';
/** request calls the edge's JSON API with the auth_key as a Bearer token. */
export async function request(fetchFn, base, authKey, method, path, body) {
    const headers = { Authorization: `Bearer ${authKey}` };
    if (body !== undefined)
        headers['Content-Type'] = 'application/json';
    let res;
    try {
        res = await fetchFn(base.replace(/\/+$/, '') + path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    }
    catch (err) {
        throw new AllSparkError('unavailable', `${method} ${path}: ${err?.message ?? err}`, { detail: err });
    }
    const text = await res.text().catch(() => '');
    let parsed;
    try {
        parsed = text ? JSON.parse(text) : {};
    }
    catch {
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
    return parsed;
}
