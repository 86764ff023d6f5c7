package index

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SynthOptions configures WriteSynthCorpus.
type SynthOptions struct {
	Docs  int    // passages to write
	Words int    // words per passage (default 100)
	Vocab int    // vocabulary size (default 200,000)
	Seed  uint64 // random seed; the same seed gives the same corpus
	// Zipf exponent s > 1 of the word distribution (default 1.07, close to
	// English word frequencies).
	S float64
}

// WriteSynthCorpus writes a synthetic corpus in the Search-R1 wiki-18 format
// ({"id", "contents": "\"Title\"\ntext"}, one JSON object a line) to w. Words
// are drawn from a Zipf distribution over a vocabulary of pronounceable
// made-up words; titles are two words. It is meant for benchmarks at 1M+
// passages and streams: memory does not grow with Docs.
func WriteSynthCorpus(w io.Writer, opt SynthOptions) error {
	if opt.Words <= 0 {
		opt.Words = 100
	}
	if opt.Vocab <= 0 {
		opt.Vocab = 200000
	}
	if opt.S <= 1 {
		opt.S = 1.07
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x1657))
	vocab := make([]string, opt.Vocab)
	for i := range vocab {
		vocab[i] = synthWord(i)
	}
	z := rand.NewZipf(rng, opt.S, 1, uint64(opt.Vocab-1))
	bw := bufio.NewWriterSize(w, 1<<20)
	var sb strings.Builder
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	type row struct {
		ID       string `json:"id"`
		Contents string `json:"contents"`
	}
	for d := 0; d < opt.Docs; d++ {
		sb.Reset()
		t1, t2 := vocab[z.Uint64()], vocab[z.Uint64()]
		sb.WriteString("\"")
		sb.WriteString(strings.ToUpper(t1[:1]) + t1[1:] + " " + t2)
		sb.WriteString("\"\n")
		for i := 0; i < opt.Words; i++ {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[z.Uint64()])
		}
		sb.WriteByte('.')
		if err := enc.Encode(row{ID: strconv.Itoa(d), Contents: sb.String()}); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	return bw.Flush()
}

// synthWord spells the i-th vocabulary word from consonant-vowel syllables,
// so that words are distinct and pass through the analyzers as one token.
func synthWord(i int) string {
	const cons = "bdfgklmnprstvz"
	const vows = "aeiou"
	var b []byte
	n := i
	for {
		b = append(b, cons[n%len(cons)], vows[(n/len(cons))%len(vows)])
		n /= len(cons) * len(vows)
		if n == 0 {
			break
		}
		n--
	}
	if len(b) < 4 {
		b = append(b, 'x')
	}
	return string(b)
}
