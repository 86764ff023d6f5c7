package tokenize

import (
	"os"
	"testing"
)

func BenchmarkLoadQwen(b *testing.B) {
	data, err := os.ReadFile(qwenPath())
	if err != nil {
		b.Fatalf("%v; run make setup", err)
	}
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
