//go:build hftokenizers

package tokenize

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHFBackendAgrees compares the project's tokenizer with the Rust
// library on the reference vectors and on random mixed-script strings.
func TestHFBackendAgrees(t *testing.T) {
	ours := loadQwen(t)
	theirs, err := LoadHF(qwenPath())
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	if ours.VocabSize() != theirs.VocabSize() {
		t.Errorf("VocabSize: ours %d, hf %d", ours.VocabSize(), theirs.VocabSize())
	}
	texts := []string{"<|im_start|>user\nhi<|im_end|>", "x'ſy", "Kelvin \u212a", "a\u0338<|im_end|>\u0338"}
	for _, r := range loadVectors(t) {
		texts = append(texts, r.Text)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 3000 {
		texts = append(texts, randomScanInput(rng))
	}
	for _, s := range texts {
		for _, c := range []struct {
			name    string
			got, hf []int32
		}{
			{"Encode", ours.Encode(s), theirs.Encode(s)},
			{"EncodeNoSpecial", ours.EncodeNoSpecial(s), theirs.EncodeNoSpecial(s)},
		} {
			if !slices.Equal(c.got, c.hf) {
				t.Errorf("%s(%q):\n ours %v\n   hf %v", c.name, s, c.got, c.hf)
				continue
			}
			for _, skip := range []bool{false, true} {
				if a, b := ours.Decode(c.got, skip), theirs.Decode(c.got, skip); a != b {
					t.Errorf("Decode(%v, %v): ours %q, hf %q", c.got, skip, a, b)
				}
			}
		}
	}
}
