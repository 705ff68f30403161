package allspark

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// DecodeObject decodes one JSON object into v, rejecting fields that v
// does not have: a misspelt field ("paylod") must not be accepted and its
// message stored empty. Errors are bad_frame and name the field.
func DecodeObject(b []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// encoding/json reports an unknown field only as this text.
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Errorf(CodeBadFrame, "unknown field "+Truncate(field, 66))
		}
		if errors.Is(err, io.EOF) {
			return Errorf(CodeBadFrame, "invalid JSON: empty")
		}
		return Errorf(CodeBadFrame, "invalid JSON: "+err.Error())
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return Errorf(CodeBadFrame, "invalid JSON: data after the object")
	}
	return nil
}
