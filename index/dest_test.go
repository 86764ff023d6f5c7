package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/igsearch/igsearch/atomicfile"
)

// Before: a build into a directory holding meta.bin and other files
// replaced the directory whole, deleting the other files.
func TestBuildKeepsFilesBesideAnIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	if _, err := Build(context.Background(), strings.NewReader(textRow("a", "first")), dir, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("mine"), 0o644)
	_, err := Build(context.Background(), strings.NewReader(textRow("b", "second")), dir, BuildOptions{})
	if !errors.Is(err, atomicfile.ErrForeign) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("build over an index with notes.txt beside it: %v; want a refusal naming notes.txt", err)
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "mine" {
		t.Fatalf("notes.txt: %q, %v", b, err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if len(ix.Search("first", 1)) != 1 {
		t.Error("the refused build changed the index")
	}
}

// endlessCorpus is a corpus that never ends, for a build that is killed.
type endlessCorpus struct {
	n   int
	buf []byte
}

func (c *endlessCorpus) Read(p []byte) (int, error) {
	for len(c.buf) < len(p) {
		c.buf = append(c.buf, textRow(fmt.Sprint(c.n), fmt.Sprintf("passage %d about w%d and w%d", c.n, c.n%97, c.n%89))...)
		c.n++
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

var _ io.Reader = (*endlessCorpus)(nil)

// TestHelperEndlessBuild is not a test: TestKilledBuildIsCleaned runs the
// test binary with it to have a build process to kill.
func TestHelperEndlessBuild(t *testing.T) {
	dir := os.Getenv("IGSEARCH_TEST_ENDLESS_BUILD")
	if dir == "" {
		t.Skip("helper process only")
	}
	Build(context.Background(), &endlessCorpus{}, dir, BuildOptions{Workers: 1})
}

// Before: a build killed with SIGKILL left its hidden .OUT.tmp-N directory
// (up to 326 MB) for good. The next build of the same output removes it.
func TestKilledBuildIsCleaned(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "idx")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEndlessBuild$")
	cmd.Env = append(os.Environ(), "IGSEARCH_TEST_ENDLESS_BUILD="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the build has written into its temporary directory.
	var leftover string
	for deadline := time.Now().Add(30 * time.Second); leftover == "" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".idx.tmp") {
				leftover = filepath.Join(parent, e.Name())
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if leftover == "" {
		t.Fatal("the killed build never created its temporary directory")
	}
	if _, err := os.Stat(leftover); err != nil {
		t.Fatalf("the killed build left nothing to clean (%v)", err)
	}
	if _, err := Build(context.Background(), strings.NewReader(textRow("a", "x")), dir, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s is still there after the next build (%v)", leftover, err)
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "idx" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("parent holds %v, want only idx", names)
	}
}

// Before: an empty corpus (or one whose every line was skipped) built a
// 0-passage index and exited 0.
func TestEmptyCorpusIsAnError(t *testing.T) {
	for _, corpus := range []string{"", "\n\n", "not json\n"} {
		dir := filepath.Join(t.TempDir(), "idx")
		_, err := Build(context.Background(), strings.NewReader(corpus), dir, BuildOptions{SkipBad: true})
		if err == nil || !strings.Contains(err.Error(), "no passages") {
			t.Errorf("corpus %q: %v, want an error saying it holds no passages", corpus, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("corpus %q: the index was written (%v)", corpus, err)
		}
	}
}
