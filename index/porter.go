package index

// The original Porter stemmer (M.F. Porter, "An algorithm for suffix
// stripping", Program 14(3), 1980) as published in Porter's own reference
// implementation and as Lucene's PorterStemFilter implements it, including the
// two departures from the paper that both carry: step 2 maps "bli" to "ble"
// (not "abli" to "able") and adds "logi" to "log". It is not Porter2 (the
// Snowball "english" stemmer). Words of one or two characters are left alone.
//
// The stemmer works on runes, so that a non-ASCII letter counts as one
// consonant, as a UTF-16 char does in Lucene.

// porterStemmer holds the word being stemmed; b[0:k+1] is the current word.
type porterStemmer struct {
	b []rune
	k int // index of the last rune of the current word
	j int // end of the stem set by ends
}

// porterStem returns the stem of w, which must already be lowercase.
func porterStem(w string) string {
	var buf [64]rune
	b := buf[:0]
	for _, r := range w {
		b = append(b, r)
	}
	out := stemRunes(b)
	if len(out) == len(b) && string(out) == w {
		return w
	}
	return string(out)
}

// stemRunes stems b in place and returns the stemmed prefix of b (the stem may
// use more capacity than the input only when a rule lengthens it, which
// setto handles by appending).
func stemRunes(b []rune) []rune {
	if len(b) <= 2 {
		return b
	}
	z := porterStemmer{b: b, k: len(b) - 1}
	z.step1ab()
	if z.k > 0 {
		z.step1c()
		z.step2()
		z.step3()
		z.step4()
		z.step5()
	}
	return z.b[:z.k+1]
}

// cons reports whether b[i] is a consonant.
func (z *porterStemmer) cons(i int) bool {
	switch z.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		if i == 0 {
			return true
		}
		return !z.cons(i - 1)
	}
	return true
}

// m measures the number of consonant sequences between 0 and j:
// [C](VC)^m[V].
func (z *porterStemmer) m() int {
	n, i := 0, 0
	for {
		if i > z.j {
			return n
		}
		if !z.cons(i) {
			break
		}
		i++
	}
	i++
	for {
		for {
			if i > z.j {
				return n
			}
			if z.cons(i) {
				break
			}
			i++
		}
		i++
		n++
		for {
			if i > z.j {
				return n
			}
			if !z.cons(i) {
				break
			}
			i++
		}
		i++
	}
}

// vowelInStem reports whether b[0:j+1] contains a vowel.
func (z *porterStemmer) vowelInStem() bool {
	for i := 0; i <= z.j; i++ {
		if !z.cons(i) {
			return true
		}
	}
	return false
}

// doublec reports whether b[j-1:j+1] is a double consonant.
func (z *porterStemmer) doublec(j int) bool {
	if j < 1 || z.b[j] != z.b[j-1] {
		return false
	}
	return z.cons(j)
}

// cvc reports whether b[i-2:i+1] is consonant-vowel-consonant and the second
// consonant is not w, x or y (as in cav(e), lov(e), hop(e), but not snow).
func (z *porterStemmer) cvc(i int) bool {
	if i < 2 || !z.cons(i) || z.cons(i-1) || !z.cons(i-2) {
		return false
	}
	switch z.b[i] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

// ends reports whether b[0:k+1] ends with s, and sets j to the stem before it.
func (z *porterStemmer) ends(s string) bool {
	l := len(s) // suffixes are ASCII
	o := z.k - l + 1
	if o < 0 {
		return false
	}
	for i := 0; i < l; i++ {
		if z.b[o+i] != rune(s[i]) {
			return false
		}
	}
	z.j = z.k - l
	return true
}

// setto replaces b[j+1:k+1] with s and adjusts k.
func (z *porterStemmer) setto(s string) {
	z.b = z.b[:z.j+1]
	for i := 0; i < len(s); i++ {
		z.b = append(z.b, rune(s[i]))
	}
	z.k = z.j + len(s)
}

// r replaces the suffix with s when m() > 0.
func (z *porterStemmer) r(s string) {
	if z.m() > 0 {
		z.setto(s)
	}
}

// step1ab removes plurals and -ed or -ing.
func (z *porterStemmer) step1ab() {
	if z.b[z.k] == 's' {
		switch {
		case z.ends("sses"):
			z.k -= 2
		case z.ends("ies"):
			z.setto("i")
		case z.b[z.k-1] != 's':
			z.k--
		}
	}
	if z.ends("eed") {
		if z.m() > 0 {
			z.k--
		}
	} else if (z.ends("ed") || z.ends("ing")) && z.vowelInStem() {
		z.k = z.j
		switch {
		case z.ends("at"):
			z.setto("ate")
		case z.ends("bl"):
			z.setto("ble")
		case z.ends("iz"):
			z.setto("ize")
		case z.doublec(z.k):
			z.k--
			switch z.b[z.k] {
			case 'l', 's', 'z':
				z.k++
			}
		default:
			z.j = z.k
			if z.m() == 1 && z.cvc(z.k) {
				z.setto("e")
			}
		}
	}
}

// step1c turns a terminal y into i when there is another vowel in the stem.
func (z *porterStemmer) step1c() {
	if z.ends("y") && z.vowelInStem() {
		z.b[z.k] = 'i'
	}
}

// step2 maps double suffixes to single ones when m() > 0.
func (z *porterStemmer) step2() {
	if z.k == 0 {
		return
	}
	switch z.b[z.k-1] {
	case 'a':
		if z.ends("ational") {
			z.r("ate")
		} else if z.ends("tional") {
			z.r("tion")
		}
	case 'c':
		if z.ends("enci") {
			z.r("ence")
		} else if z.ends("anci") {
			z.r("ance")
		}
	case 'e':
		if z.ends("izer") {
			z.r("ize")
		}
	case 'l':
		if z.ends("bli") {
			z.r("ble")
		} else if z.ends("alli") {
			z.r("al")
		} else if z.ends("entli") {
			z.r("ent")
		} else if z.ends("eli") {
			z.r("e")
		} else if z.ends("ousli") {
			z.r("ous")
		}
	case 'o':
		if z.ends("ization") {
			z.r("ize")
		} else if z.ends("ation") {
			z.r("ate")
		} else if z.ends("ator") {
			z.r("ate")
		}
	case 's':
		if z.ends("alism") {
			z.r("al")
		} else if z.ends("iveness") {
			z.r("ive")
		} else if z.ends("fulness") {
			z.r("ful")
		} else if z.ends("ousness") {
			z.r("ous")
		}
	case 't':
		if z.ends("aliti") {
			z.r("al")
		} else if z.ends("iviti") {
			z.r("ive")
		} else if z.ends("biliti") {
			z.r("ble")
		}
	case 'g':
		if z.ends("logi") {
			z.r("log")
		}
	}
}

// step3 deals with -ic-, -full, -ness etc.
func (z *porterStemmer) step3() {
	switch z.b[z.k] {
	case 'e':
		if z.ends("icate") {
			z.r("ic")
		} else if z.ends("ative") {
			z.r("")
		} else if z.ends("alize") {
			z.r("al")
		}
	case 'i':
		if z.ends("iciti") {
			z.r("ic")
		}
	case 'l':
		if z.ends("ical") {
			z.r("ic")
		} else if z.ends("ful") {
			z.r("")
		}
	case 's':
		if z.ends("ness") {
			z.r("")
		}
	}
}

// step4 takes off -ant, -ence etc. in context <c>vcvc<v>.
func (z *porterStemmer) step4() {
	if z.k == 0 {
		return
	}
	switch z.b[z.k-1] {
	case 'a':
		if !z.ends("al") {
			return
		}
	case 'c':
		if !z.ends("ance") && !z.ends("ence") {
			return
		}
	case 'e':
		if !z.ends("er") {
			return
		}
	case 'i':
		if !z.ends("ic") {
			return
		}
	case 'l':
		if !z.ends("able") && !z.ends("ible") {
			return
		}
	case 'n':
		if !z.ends("ant") && !z.ends("ement") && !z.ends("ment") && !z.ends("ent") {
			return
		}
	case 'o':
		if z.ends("ion") && z.j >= 0 && (z.b[z.j] == 's' || z.b[z.j] == 't') {
			break
		}
		if !z.ends("ou") {
			return
		}
	case 's':
		if !z.ends("ism") {
			return
		}
	case 't':
		if !z.ends("ate") && !z.ends("iti") {
			return
		}
	case 'u':
		if !z.ends("ous") {
			return
		}
	case 'v':
		if !z.ends("ive") {
			return
		}
	case 'z':
		if !z.ends("ize") {
			return
		}
	default:
		return
	}
	if z.m() > 1 {
		z.k = z.j
	}
}

// step5 removes a final -e if m() > 1, and changes -ll to -l if m() > 1.
func (z *porterStemmer) step5() {
	z.j = z.k
	if z.b[z.k] == 'e' {
		a := z.m()
		if a > 1 || a == 1 && !z.cvc(z.k-1) {
			z.k--
		}
	}
	if z.b[z.k] == 'l' && z.doublec(z.k) && z.m() > 1 {
		z.k--
	}
}
