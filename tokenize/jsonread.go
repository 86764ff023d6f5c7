package tokenize

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader is a small pull parser over a JSON document held in a string.
// It exists because the vocabulary and merges of a byte-level BPE are most of
// a 6 MB tokenizer.json: reading them with encoding/json into maps costs
// several times more than this reader, which returns strings without escapes
// as substrings of the document (no copy). Everything that is not the
// vocabulary or the merges is handed to encoding/json as raw bytes.
type jsonReader struct {
	s   string
	pos int
}

var errJSONSyntax = errors.New("invalid JSON")

func (r *jsonReader) syntaxErr(what string) error {
	line := 1
	for i := 0; i < r.pos && i < len(r.s); i++ {
		if r.s[i] == '\n' {
			line++
		}
	}
	return fmt.Errorf("%w: %s at byte %d (line %d)", errJSONSyntax, what, r.pos, line)
}

func (r *jsonReader) ws() {
	for r.pos < len(r.s) {
		switch r.s[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.pos >= len(r.s) {
		return 0
	}
	return r.s[r.pos]
}

func (r *jsonReader) expect(c byte) error {
	if r.peek() != c {
		return r.syntaxErr(fmt.Sprintf("expected %q", c))
	}
	r.pos++
	return nil
}

// str reads a JSON string. Without escapes it is a substring of the document.
func (r *jsonReader) str() (string, error) {
	if r.peek() != '"' {
		return "", r.syntaxErr("expected a string")
	}
	r.pos++
	start := r.pos
	for r.pos < len(r.s) {
		c := r.s[r.pos]
		if c == '"' {
			v := r.s[start:r.pos]
			r.pos++
			return v, nil
		}
		if c == '\\' {
			return r.strEscaped(start)
		}
		if c < 0x20 {
			return "", r.syntaxErr("control character in string")
		}
		r.pos++
	}
	return "", r.syntaxErr("unterminated string")
}

func (r *jsonReader) strEscaped(start int) (string, error) {
	b := []byte(r.s[start:r.pos])
	for r.pos < len(r.s) {
		c := r.s[r.pos]
		switch {
		case c == '"':
			r.pos++
			return string(b), nil
		case c < 0x20:
			return "", r.syntaxErr("control character in string")
		case c != '\\':
			b = append(b, c)
			r.pos++
			continue
		}
		if r.pos+1 >= len(r.s) {
			return "", r.syntaxErr("unterminated string")
		}
		e := r.s[r.pos+1]
		r.pos += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			c1, ok := r.hex4()
			if !ok {
				return "", r.syntaxErr("bad \\u escape")
			}
			ru := rune(c1)
			if utf16.IsSurrogate(ru) {
				ru = utf8.RuneError
				if r.pos+1 < len(r.s) && r.s[r.pos] == '\\' && r.s[r.pos+1] == 'u' {
					save := r.pos
					r.pos += 2
					if c2, ok := r.hex4(); ok {
						if d := utf16.DecodeRune(rune(c1), rune(c2)); d != utf8.RuneError {
							ru = d
						} else {
							r.pos = save
						}
					} else {
						r.pos = save
					}
				}
			}
			b = utf8.AppendRune(b, ru)
		default:
			return "", r.syntaxErr("bad escape")
		}
	}
	return "", r.syntaxErr("unterminated string")
}

func (r *jsonReader) hex4() (uint16, bool) {
	if r.pos+4 > len(r.s) {
		return 0, false
	}
	v, err := strconv.ParseUint(r.s[r.pos:r.pos+4], 16, 16)
	if err != nil {
		return 0, false
	}
	r.pos += 4
	return uint16(v), true
}

// int reads a JSON number that must be an integer.
func (r *jsonReader) int() (int64, error) {
	r.ws()
	start := r.pos
	if r.pos < len(r.s) && r.s[r.pos] == '-' {
		r.pos++
	}
	var v int64
	digits := 0
	for r.pos < len(r.s) && r.s[r.pos] >= '0' && r.s[r.pos] <= '9' {
		v = v*10 + int64(r.s[r.pos]-'0')
		r.pos++
		digits++
		if digits > 18 {
			return 0, r.syntaxErr("integer too large")
		}
	}
	if digits == 0 {
		r.pos = start
		return 0, r.syntaxErr("expected an integer")
	}
	if r.pos < len(r.s) && (r.s[r.pos] == '.' || r.s[r.pos] == 'e' || r.s[r.pos] == 'E') {
		r.pos = start
		return 0, r.syntaxErr("expected an integer")
	}
	if r.s[start] == '-' {
		v = -v
	}
	return v, nil
}

// skip passes over one value of any kind and returns its raw text.
func (r *jsonReader) skip() (string, error) {
	r.ws()
	start := r.pos
	depth := 0
	for {
		if r.pos >= len(r.s) {
			return "", r.syntaxErr("unexpected end of input")
		}
		switch c := r.s[r.pos]; c {
		case '"':
			if _, err := r.str(); err != nil {
				return "", err
			}
		case '{', '[':
			depth++
			r.pos++
		case '}', ']':
			depth--
			if depth < 0 {
				return "", r.syntaxErr("unexpected " + string(c))
			}
			r.pos++
		case ',', ':':
			if depth == 0 {
				return "", r.syntaxErr("unexpected " + string(c))
			}
			r.pos++
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			// A literal or a number: run to the next delimiter.
			n := r.pos
			for n < len(r.s) && !isJSONDelim(r.s[n]) {
				n++
			}
			if n == r.pos {
				return "", r.syntaxErr("unexpected character")
			}
			r.pos = n
		}
		if depth == 0 {
			return r.s[start:r.pos], nil
		}
	}
}

func isJSONDelim(c byte) bool {
	switch c {
	case ',', ':', '{', '}', '[', ']', '"', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// object calls fn for each key of an object; fn must consume the value.
func (r *jsonReader) object(fn func(key string) error) error {
	if err := r.expect('{'); err != nil {
		return err
	}
	if r.peek() == '}' {
		r.pos++
		return nil
	}
	for {
		k, err := r.str()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return r.syntaxErr("expected ',' or '}'")
		}
	}
}

// array calls fn for each element of an array; fn must consume the element.
func (r *jsonReader) array(fn func(i int) error) error {
	if err := r.expect('['); err != nil {
		return err
	}
	if r.peek() == ']' {
		r.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return nil
		default:
			return r.syntaxErr("expected ',' or ']'")
		}
	}
}

// end checks that only white space is left.
func (r *jsonReader) end() error {
	if r.peek() != 0 {
		return r.syntaxErr("data after the top-level value")
	}
	return nil
}
