package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestWriteReplacesOnlyWhenComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	if err := WriteFile(path, []byte("old\n")); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("writer failed")
	err := Write(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("Write error %v, want the writer's", err)
	}
	if got := readString(t, path); got != "old\n" {
		t.Fatalf("after a failed write the file holds %q, want the old content", got)
	}
	if err := WriteFile(path, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != "new\n" {
		t.Fatalf("file holds %q, want %q", got, "new\n")
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Fatalf("directory holds %v, want only out.jsonl", names)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
}

func TestAbortAfterCommitKeepsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.txt")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if got := readString(t, path); got != "x" {
		t.Fatalf("got %q", got)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
}

// deadPID is the id of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child process: %v", err)
	}
	return cmd.Process.Pid
}

func TestKilledWritersTemporariesAreCleaned(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "idx")
	dead := deadPID(t)
	// What killed runs left: a new-style temp dir with its .old, the digits
	// MkdirTemp used to append, and a live writer's temp (this process).
	stale := []string{
		fmt.Sprintf(".idx.tmp-%d-77", dead),
		fmt.Sprintf(".idx.tmp-%d-77.old", dead),
		".idx.tmp-4294967295",
	}
	for _, s := range stale {
		if err := os.MkdirAll(filepath.Join(dir, s, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	live := fmt.Sprintf(".idx.tmp-%d-5", os.Getpid())
	keep := []string{live, ".other.tmp-1", "idx2", ".idx.tmpfoo"}
	for _, k := range keep {
		os.Mkdir(filepath.Join(dir, k), 0o755)
	}
	tmp, err := TempDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(tmp), fmt.Sprintf(".idx.tmp-%d-", os.Getpid())) {
		t.Fatalf("temp dir %s does not carry this process's id", tmp)
	}
	os.WriteFile(filepath.Join(tmp, "meta.bin"), []byte("m"), 0o644)
	if err := ReplaceDir(tmp, out); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"idx"}, keep...)
	sort.Strings(want)
	if got := listDir(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after TempDir the parent holds %v, want %v", got, want)
	}
	if got := readString(t, filepath.Join(out, "meta.bin")); got != "m" {
		t.Fatalf("meta.bin %q", got)
	}
}

func TestCreateCleansStaleFileTemporaries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "scored.jsonl")
	stale := filepath.Join(dir, fmt.Sprintf(".scored.jsonl.tmp-%d-1", deadPID(t)))
	os.WriteFile(stale, []byte("partial"), 0o644)
	if err := WriteFile(path, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary %s still there (%v)", stale, err)
	}
}

func TestReplaceDirSwapsExisting(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "ck")
	os.Mkdir(out, 0o755)
	os.WriteFile(filepath.Join(out, "old.bin"), []byte("1"), 0o644)
	tmp, err := TempDir(out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tmp, "new.bin"), []byte("2"), 0o644)
	if err := ReplaceDir(tmp, out); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, out); strings.Join(got, " ") != "new.bin" {
		t.Fatalf("out holds %v", got)
	}
	if got := listDir(t, dir); strings.Join(got, " ") != "ck" {
		t.Fatalf("parent holds %v", got)
	}
}

var indexKind = Kind{Name: "an index", Marker: "meta.bin", Owns: func(n string) bool {
	return n == "meta.bin" || n == "postings.bin"
}}

func TestGuard(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files ...string) string {
		d := filepath.Join(root, name)
		os.Mkdir(d, 0o755)
		for _, f := range files {
			os.WriteFile(filepath.Join(d, f), nil, 0o644)
		}
		return d
	}
	file := filepath.Join(root, "plain")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		dir     string
		replace bool
		want    error // nil: allowed
		says    string
	}{
		{filepath.Join(root, "missing"), false, nil, ""},
		{mk("empty"), false, nil, ""},
		{mk("index", "meta.bin", "postings.bin"), true, nil, ""},
		{mk("index2", "meta.bin", ".postings.bin.tmp-1-2"), true, nil, ""},
		{mk("index3", "meta.bin", "postings.bin"), false, ErrExists, "pass --force"},
		{mk("mixed", "meta.bin", "notes.txt"), true, ErrForeign, "notes.txt"},
		{mk("user", "a", "b", "c", "d", "e", "f", "g"), true, ErrForeign, "and 2 more"},
		{mk("nomarker", "postings.bin"), true, ErrForeign, "no meta.bin"},
		{file, true, ErrForeign, "is a file"},
	}
	for _, c := range cases {
		err := Guard(c.dir, indexKind, c.replace, "--force")
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want allowed", filepath.Base(c.dir), err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %v, want %v mentioning %q", filepath.Base(c.dir), err, c.want, c.says)
		}
	}
}
