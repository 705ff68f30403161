/** MaxIDLen is the longest id the edge accepts, in UTF-8 bytes. */
export const MaxIDLen = 128;
const encoder = new TextEncoder();
// Go's unicode.IsControl: C0, DEL and C1.
const control = /[\u0000-\u001f\u007f-\u009f]/;
// A lone surrogate cannot be encoded as UTF-8.
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/**
 * validId mirrors the edge's ValidID (id.go): 1..128 bytes of valid UTF-8
 * without control characters.
 */
export function validId(s) {
    if (typeof s !== 'string' || s.length === 0 || s.length > MaxIDLen)
        return false;
    if (control.test(s) || loneSurrogate.test(s))
        return false;
    return encoder.encode(s).length <= MaxIDLen;
}
