package sysmem

import (
	"strings"
	"testing"
)

func TestMeminfoAvailable(t *testing.T) {
	text := "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   12288000 kB\nBuffers: 1 kB\n"
	v, ok := meminfoAvailable([]byte(text))
	if !ok || v != 12288000*1024 {
		t.Fatalf("got %d, %v; want %d", v, ok, 12288000*1024)
	}
	if _, ok := meminfoAvailable([]byte("MemTotal: 1 kB\n")); ok {
		t.Fatal("found MemAvailable where there is none")
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[uint64]string{512: "512 B", 1536: "1.5 KiB", 400 << 30: "400.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	avail, ok := Available()
	if !ok {
		t.Skip("memory cannot be read here")
	}
	if err := Check("a small thing", 1<<20); err != nil {
		t.Fatalf("1 MiB refused: %v", err)
	}
	err := Check("the weights of x.json", avail+1<<40)
	if err == nil || !strings.Contains(err.Error(), "the weights of x.json need") {
		t.Fatalf("a terabyte beyond the available memory: %v", err)
	}
}
