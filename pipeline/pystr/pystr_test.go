package pystr

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

// pyProbe prints, over every code point that python3's Unicode database
// assigns (surrogates excluded), the sets where Python's str methods
// matter to normalize_answer: lowercase mappings that change the
// character, white space, \w, and three Final_Sigma probes.
const pyProbe = `
import json, re, sys, unicodedata
word = re.compile(r"\w")
out = {"version": unicodedata.unidata_version, "lower": {}, "space": [], "word": [], "after": [], "alone": [], "before": []}
for cp in range(0x110000):
    c = chr(cp)
    if unicodedata.category(c) in ("Cn", "Cs"):
        continue
    if c.lower() != c:
        out["lower"][cp] = c.lower()
    if c.isspace():
        out["space"].append(cp)
    if word.match(c):
        out["word"].append(cp)
    if ("A" + c + "\u03a3").lower()[-1] == "\u03c2":
        out["after"].append(cp)
    if (c + "\u03a3").lower()[-1] == "\u03c2":
        out["alone"].append(cp)
    if ("A\u03a3" + c).lower()[1] == "\u03c2":
        out["before"].append(cp)
out["assigned"] = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
json.dump(out, sys.stdout, ensure_ascii=True)
`

// TestCodePoints checks Lower, IsSpace and IsWord against python3
// on every code point its Unicode database assigns. Code points that
// Python's (older or newer) database leaves unassigned are not compared.
func TestCodePoints(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: Python's str methods not compared")
	}
	out, err := exec.Command(py, "-c", pyProbe).Output()
	if err != nil {
		t.Fatalf("python3 probe: %v", err)
	}
	var p struct {
		Version                                     string
		Lower                                       map[rune]string
		Space, Word, After, Alone, Before, Assigned []rune
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	set := func(xs []rune) map[rune]bool {
		m := make(map[rune]bool, len(xs))
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	space, word, after, alone, before := set(p.Space), set(p.Word), set(p.After), set(p.Alone), set(p.Before)
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 30 {
			t.Errorf(format, args...)
		}
	}
	for _, r := range p.Assigned {
		c := string(r)
		want, ok := p.Lower[r]
		if !ok {
			want = c
		}
		if got := Lower(c); got != want {
			report("lower(%U) = %+q, python %+q", r, got, want)
		}
		if IsSpace(r) != space[r] {
			report("isspace(%U) = %v, python %v", r, IsSpace(r), space[r])
		}
		if IsWord(r) != word[r] {
			report(`\w(%U) = %v, python %v`, r, IsWord(r), word[r])
		}
		sigma := func(s string, at int) bool {
			rs := []rune(Lower(s))
			if at < 0 {
				at += len(rs)
			}
			return rs[at] == 'ς'
		}
		if got := sigma("A"+c+"Σ", -1); got != after[r] {
			report("lower(A %U Σ) final sigma %v, python %v", r, got, after[r])
		}
		if got := sigma(c+"Σ", -1); got != alone[r] {
			report("lower(%U Σ) final sigma %v, python %v", r, got, alone[r])
		}
		if got := sigma("AΣ"+c, 1); got != before[r] {
			report("lower(A Σ %U) final sigma %v, python %v", r, got, before[r])
		}
	}
	if bad > 0 {
		t.Errorf("%d differences over %d code points (python Unicode %s)", bad, len(p.Assigned), p.Version)
	}
	if !utf8.ValidString(Lower("İΣ")) || strings.Count(Lower("İ"), "") != 3 {
		t.Error("İ must lower to two code points")
	}
}
