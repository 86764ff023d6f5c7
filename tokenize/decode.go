package tokenize

import (
	"fmt"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table: printable bytes stand for
// themselves, the others for U+0100 onwards in byte order.
var byteToRune, runeToByte = func() (b2r [256]rune, r2b map[rune]byte) {
	r2b = make(map[rune]byte, 256)
	next := rune(256)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			b2r[b] = rune(b)
		} else {
			b2r[b] = next
			next++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// runeByte is runeToByte as a flat table: every byte-level character is
// below U+0144. -1 marks characters outside the table.
var runeByte = func() (t [0x144]int16) {
	for i := range t {
		t[i] = -1
	}
	for r, b := range runeToByte {
		t[r] = int16(b)
	}
	return t
}()

// byteLevelString maps raw bytes to their byte-level characters.
func byteLevelString(w string) string {
	out := make([]rune, len(w))
	for i := 0; i < len(w); i++ {
		out[i] = byteToRune[w[i]]
	}
	return string(out)
}

// decoderKind is the "decoder" section: how token strings become text.
type decoderKind int

const (
	// decodeJoin joins token strings with a space: HF's behaviour without a
	// decoder.
	decodeJoin decoderKind = iota
	// decodeByteLevel maps byte-level characters back to bytes.
	decodeByteLevel
)

func (t *Tokenizer) buildDecoder(raw string) error {
	c, err := parseComponent(raw, "decoder")
	if err != nil {
		return err
	}
	if c == nil {
		t.decoder = decodeJoin
		return nil
	}
	switch c.Type {
	case "ByteLevel":
		t.decoder = decodeByteLevel
		return nil
	}
	return fmt.Errorf("decoder.type: %q is not supported (ByteLevel, or null)", c.Type)
}

// appendTokenBytes appends the bytes that token id stands for under the
// byte-level decoder: a token whose characters all come from the byte table
// is mapped through it, any other token (an added token with a space, say)
// is copied as it is.
func appendByteLevel(dst []byte, tok string) []byte {
	start := len(dst)
	for i := 0; i < len(tok); {
		c := tok[i]
		if c < utf8.RuneSelf {
			if b := runeByte[c]; b >= 0 {
				dst = append(dst, byte(b))
				i++
				continue
			}
			return append(dst[:start], tok...)
		}
		r, n := utf8.DecodeRuneInString(tok[i:])
		if r >= rune(len(runeByte)) || runeByte[r] < 0 {
			return append(dst[:start], tok...)
		}
		dst = append(dst, byte(runeByte[r]))
		i += n
	}
	return dst
}

// tokenText returns the string of id (added token content or vocabulary
// entry) and whether it is to be decoded; ids out of range or skipped
// special tokens give false.
func (t *Tokenizer) tokenText(id int32, skipSpecial bool) (string, bool) {
	if id < 0 || int(id) >= len(t.tokens) {
		return "", false
	}
	if a := t.addedByID[id]; a != nil {
		if skipSpecial && a.special {
			return "", false
		}
		return a.content, true
	}
	s := t.tokens[id]
	return s, s != ""
}

// TokenBytes returns the bytes that id decodes to, which for a byte-level
// token may be part of a UTF-8 character; nil for an unused id. Under the
// space-joining decoder (no "decoder" in tokenizer.json) it is the token's
// string.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	s, ok := t.tokenText(id, false)
	if !ok {
		return nil
	}
	if t.decoder == decodeByteLevel {
		return appendByteLevel(nil, s)
	}
	return []byte(s)
}

// Decode turns ids back into text. With skipSpecial, special added tokens
// (such as <|im_end|>) are left out. Ids outside the vocabulary are skipped.
// Byte sequences that are not valid UTF-8 become U+FFFD, one per maximal
// invalid subpart, as Rust's String::from_utf8_lossy does.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	var buf []byte
	first := true
	for _, id := range ids {
		s, ok := t.tokenText(id, skipSpecial)
		if !ok {
			continue
		}
		buf = t.appendToken(buf, s, first)
		first = false
	}
	if t.decoder == decodeByteLevel {
		return string(appendLossy(nil, buf))
	}
	return string(buf)
}

func (t *Tokenizer) appendToken(buf []byte, s string, first bool) []byte {
	if t.decoder == decodeByteLevel {
		return appendByteLevel(buf, s)
	}
	if !first {
		buf = append(buf, ' ')
	}
	return append(buf, s...)
}

// appendLossy appends b with each maximal invalid UTF-8 subpart replaced by
// U+FFFD.
func appendLossy(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			dst = append(dst, b[i:i+n]...)
			i += n
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += invalidPrefixLen(b[i:])
	}
	return dst
}

// invalidPrefixLen is the length of the maximal subpart at the start of b,
// which does not start with a valid encoding: the longest prefix of a valid
// sequence, or 1.
func invalidPrefixLen(b []byte) int {
	need, lo, hi := seqShape(b[0])
	if need == 0 {
		return 1
	}
	n := 1
	for n < need && n < len(b) {
		c := b[n]
		l, h := byte(0x80), byte(0xBF)
		if n == 1 {
			l, h = lo, hi
		}
		if c < l || c > h {
			break
		}
		n++
	}
	return n
}

// seqShape gives the length of the sequence a lead byte starts and the range
// of its second byte; need 0 means c cannot start a sequence.
func seqShape(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}

// Decoder turns a stream of ids into text as they are generated. Step
// returns only complete UTF-8: bytes of a character split across tokens are
// held until the character is complete. A Decoder is not safe for
// concurrent use; make one per sequence.
type Decoder struct {
	t           *Tokenizer
	skipSpecial bool
	pending     []byte
	first       bool
}

// NewDecoder returns a streaming decoder. The concatenation of its Step
// results and Flush equals Decode of the same ids.
func (t *Tokenizer) NewDecoder(skipSpecial bool) *Decoder {
	return &Decoder{t: t, skipSpecial: skipSpecial, first: true}
}

// Step adds one id and returns the text that is now complete (often "").
func (d *Decoder) Step(id int32) string {
	s, ok := d.t.tokenText(id, d.skipSpecial)
	if !ok {
		return ""
	}
	d.pending = d.t.appendToken(d.pending, s, d.first)
	d.first = false
	if d.t.decoder != decodeByteLevel {
		out := string(d.pending)
		d.pending = d.pending[:0]
		return out
	}
	cut := completePrefix(d.pending)
	if cut == 0 {
		return ""
	}
	out := string(appendLossy(nil, d.pending[:cut]))
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// Flush returns what is still held, invalid bytes as U+FFFD, and empties the
// decoder's buffer.
func (d *Decoder) Flush() string {
	out := string(appendLossy(nil, d.pending))
	d.pending = d.pending[:0]
	return out
}

// Reset makes the decoder ready for a new sequence.
func (d *Decoder) Reset() {
	d.pending = d.pending[:0]
	d.first = true
}

// completePrefix returns how much of b can be emitted now: everything but a
// trailing incomplete (yet still possibly valid) UTF-8 sequence.
func completePrefix(b []byte) int {
	// A held tail is at most 3 bytes: find the last lead byte among them.
	for k := len(b) - 1; k >= 0 && k >= len(b)-3; k-- {
		c := b[k]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 {
			need, _, _ := seqShape(c)
			if need == 0 || len(b)-k >= need {
				return len(b)
			}
			if invalidPrefixLen(b[k:]) == len(b)-k {
				return k // a valid prefix still waiting for bytes
			}
			return len(b)
		}
	}
	return len(b)
}
