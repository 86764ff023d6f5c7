// Package searchr1test lets tests run third-party Search-R1 code and the
// project's stand-in of its retrieval server. Nothing here is committed
// Search-R1 code: Source reads a fetched copy of the repository.
//
//	IGSEARCH_SEARCHR1_GIT  a (bare) git directory of
//	                       github.com/PeterGriffinJin/Search-R1; default
//	                       the fetch tool's mirror, DefaultGitDir
//
// Every helper skips the test, saying what is missing, when python3, a
// Python module or the repository is absent.
package searchr1test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// DefaultGitDir is where the fetch tool mirrors Search-R1.
const DefaultGitDir = "/work/.mirror/PeterGriffinJin+Search-R1/repo"

// Source returns the file at path in Search-R1's HEAD, or skips t.
func Source(t testing.TB, path string) []byte {
	t.Helper()
	dir := os.Getenv("IGSEARCH_SEARCHR1_GIT")
	if dir == "" {
		dir = DefaultGitDir
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("Search-R1 repository not found at %s (set IGSEARCH_SEARCHR1_GIT to a git dir of github.com/PeterGriffinJin/Search-R1)", dir)
	}
	out, err := exec.Command("git", "--git-dir="+dir, "show", "HEAD:"+path).Output()
	if err != nil {
		t.Skipf("git show HEAD:%s in %s: %v", path, dir, err)
	}
	return out
}

// WriteSource writes Search-R1's path into dir under its base name and
// returns the file's path, or skips t.
func WriteSource(t testing.TB, dir, path string) string {
	t.Helper()
	dst := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(dst, Source(t, path), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Python returns a python3 (from PATH, else /usr/bin/python3) that can
// import every module named, or skips t.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	for _, c := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if len(modules) == 0 || exec.Command(p, "-c", "import "+strings.Join(modules, ", ")).Run() == nil {
			return p
		}
	}
	if len(modules) == 0 {
		t.Skip("python3 not found")
	}
	t.Skipf("no python3 that imports %s (Debian: python3-%s)", strings.Join(modules, ", "), strings.Join(modules, " python3-"))
	return ""
}

// Script returns the path of a tool in testdata/searchr1 of this module.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "searchr1", name)
}

// StartStandIn runs testdata/searchr1/retrieval_standin.py (a stand-in
// that answers exactly as Search-R1's retrieval_server.py) over corpus, with
// --mode mode and any further flags, until the test ends, and returns its
// base URL. It skips t without python3.
func StartStandIn(t testing.TB, corpus, mode string, flags ...string) string {
	t.Helper()
	py := Python(t)
	cmd := exec.Command(py, append([]string{Script("retrieval_standin.py"), "--corpus", corpus, "--mode", mode}, flags...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	_, url, ok := strings.Cut(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("Search-R1 stand-in did not start: %q %v", line, err)
	}
	return url
}
