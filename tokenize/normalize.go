package tokenize

import (
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenisation.
type normalizer interface {
	normalize(s string) string
}

// unicodeForm is one of the NFC, NFD, NFKC and NFKD normalizers.
type unicodeForm struct{ form norm.Form }

func (u unicodeForm) normalize(s string) string {
	if isASCII(s) {
		return s // ASCII is invariant under every normal form
	}
	return u.form.String(s)
}

// lowercase is the Lowercase normalizer (Unicode simple lower-casing).
type lowercase struct{}

func (lowercase) normalize(s string) string { return strings.ToLower(s) }

// normalizerSequence applies normalizers in order.
type normalizerSequence []normalizer

func (q normalizerSequence) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// parseNormalizer reads the "normalizer" section; nil means none.
func parseNormalizer(raw, field string) (normalizer, error) {
	c, err := parseComponent(raw, field)
	if err != nil || c == nil {
		return nil, err
	}
	switch c.Type {
	case "NFC":
		return unicodeForm{norm.NFC}, nil
	case "NFD":
		return unicodeForm{norm.NFD}, nil
	case "NFKC":
		return unicodeForm{norm.NFKC}, nil
	case "NFKD":
		return unicodeForm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "Sequence":
		var seq normalizerSequence
		for i, sub := range c.Normalizers {
			n, err := parseNormalizer(string(sub), fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("%s.type: %q is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Sequence)", field, c.Type)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
