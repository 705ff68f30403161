package edge

import (
	"encoding/json"
)

// fastParse fills in from b, a client frame already trimmed and checked for
// depth, without encoding/json's reflection, for the frames every 1:1
// message costs: a message and its ack. It handles only the common shape,
// a flat object whose keys are exactly the lower-case field names of a
// message or ack frame, each at most once, with string values free of
// escapes and non-ASCII bytes. On anything else (other keys, a different
// case, escapes, nulls, a duplicate key, bad syntax) it reports false and
// leaves in for the caller to discard: the strict decoder then decides,
// with its own error texts. Where it reports true, in is exactly what
// DecodeObjectDepth would have produced (FuzzFastParseMatchesJSON).
func fastParse(b []byte, in *inFrame) bool {
	p := parser{b: b}
	if !p.byte('{') {
		return false
	}
	var seen uint16
	if p.ws(); p.peek() == '}' {
		p.i++
		return p.end()
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		bit := fastKeyBit(key)
		if bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.ws()
		if !p.byte(':') {
			return false
		}
		p.ws()
		if !p.value(key, in) {
			return false
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return p.end()
		default:
			return false
		}
	}
}

// fastKeyBit numbers the keys fastParse takes; 0 for any other.
func fastKeyBit(key string) uint16 {
	switch key {
	case "type":
		return 1 << 0
	case "id":
		return 1 << 1
	case "dest_id":
		return 1 << 2
	case "dest_client_id":
		return 1 << 3
	case "dest_session_id":
		return 1 << 4
	case "member_id":
		return 1 << 5
	case "payload":
		return 1 << 6
	case "payload1":
		return 1 << 7
	case "payload2":
		return 1 << 8
	case "msg_id":
		return 1 << 9
	case "msg_ids":
		return 1 << 10
	}
	return 0
}

type parser struct {
	b []byte
	i int
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) byte(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// ws skips JSON whitespace.
func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end reports whether only JSON whitespace follows.
func (p *parser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// str reads a string of printable ASCII without escapes.
func (p *parser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
		p.i++
	}
	return "", false
}

// value reads key's value into in.
func (p *parser) value(key string, in *inFrame) bool {
	switch key {
	case "payload", "payload1", "payload2":
		raw, ok := p.raw()
		if !ok {
			return false
		}
		switch key {
		case "payload":
			in.Payload = raw
		case "payload1":
			in.Payload1 = raw
		default:
			in.Payload2 = raw
		}
		return true
	case "msg_ids":
		return p.strings(&in.MsgIDs)
	}
	s, ok := p.str()
	if !ok {
		return false
	}
	switch key {
	case "type":
		in.Type = s
	case "id":
		in.ID = s
	case "msg_id":
		in.MsgID = s
	case "dest_id":
		in.DestID = &s
	case "dest_client_id":
		in.DestClientID = &s
	case "dest_session_id":
		in.DestSessionID = &s
	case "member_id":
		in.MemberID = &s
	}
	return true
}

// strings reads an array of strings.
func (p *parser) strings(out *[]string) bool {
	if !p.byte('[') {
		return false
	}
	ids := []string{}
	if p.ws(); p.peek() == ']' {
		p.i++
		*out = ids
		return true
	}
	for {
		p.ws()
		s, ok := p.str()
		if !ok {
			return false
		}
		ids = append(ids, s)
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			*out = ids
			return true
		default:
			return false
		}
	}
}

// raw reads any JSON value, validated, as a copy of its bytes.
func (p *parser) raw() (json.RawMessage, bool) {
	start := p.i
	depth, inString, escaped := 0, false, false
scan:
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if depth == 0 {
					p.i++
					break scan
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				break scan // the end of a number or literal
			}
			depth--
			if depth == 0 {
				p.i++
				break scan
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			break scan
		}
	}
	v := p.b[start:p.i]
	if len(v) == 0 || !json.Valid(v) {
		return nil, false
	}
	return append(json.RawMessage(nil), v...), true
}
