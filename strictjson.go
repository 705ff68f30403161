package allspark

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// DefaultMaxJSONDepth is the deepest nesting of arrays and objects a frame
// or message may have unless configured otherwise (ALLSPARK_MAX_JSON_DEPTH).
// Payloads nested thousands deep would be stored and then crash clients
// whose JSON parser recurses.
const DefaultMaxJSONDepth = 64

// DecodeObject is DecodeObjectDepth with DefaultMaxJSONDepth.
func DecodeObject(b []byte, v any) *Error {
	return DecodeObjectDepth(b, v, DefaultMaxJSONDepth)
}

// DecodeObjectDepth decodes one JSON object into v, rejecting fields that v
// does not have: a misspelt field ("paylod") must not be accepted and its
// message stored empty. Input nested deeper than maxDepth is rejected
// before decoding. Errors are bad_frame and name the field, never a Go
// type: the text goes to clients.
func DecodeObjectDepth(b []byte, v any, maxDepth int) *Error {
	if err := CheckDepth(b, maxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadFrame, DescribeJSONError(err))
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return Errorf(CodeBadFrame, "invalid JSON: data after the object")
	}
	return nil
}

// DescribeJSONError says what is wrong with a JSON input in client terms,
// from an encoding/json error: the field and the JSON kind expected, never
// the Go type it was decoded into.
func DescribeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Sprintf("invalid JSON: expected %s, got %s", jsonKind(typeErr.Type), typeErr.Value)
		}
		return fmt.Sprintf("invalid JSON: field %q must be %s, got %s", Truncate(field, 66), jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		return "invalid JSON: empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: truncated"
	}
	// encoding/json reports an unknown field only as this text.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + Truncate(field, 66)
	}
	// Anything else names Go types (an unsupported target, say): a bug on
	// our side, but the client still gets a message without them.
	return "invalid JSON"
}

// jsonKind names the JSON value a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a valid value"
}

// CheckDepth rejects JSON nested deeper than max arrays and objects (the
// outer object is depth 1). It is a single pass over the bytes that skips
// strings and allocates nothing, so it runs before any decoding; it does
// not validate the JSON, which the decoder does next.
func CheckDepth(b []byte, max int) *Error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return Errorf(CodeBadFrame, fmt.Sprintf("JSON nested deeper than %d levels (ALLSPARK_MAX_JSON_DEPTH)", max))
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
