// Package atomicfile writes files and directories so that a reader sees
// either the old version or the complete new one, never a part: every output
// is written under a hidden temporary name beside its destination, synced to
// disk and renamed into place. Temporaries left behind by a killed writer are
// removed by the next writer of the same destination, and Guard refuses to
// replace a directory that holds anything the writing stage does not own.
//
// A temporary is named ".BASE.tmp-PID-RANDOM", where PID is the writing
// process: that is how a later writer tells an abandoned temporary (its
// process is gone) from one still being written.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File is a file being written under a temporary name beside its
// destination. Write to it like an *os.File, then Commit to put it in place
// or Abort to discard it. It is not safe for concurrent use.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts the file that Commit will rename to path, with mode 0644.
// It first removes what killed writers of path left behind.
func Create(path string) (*File, error) {
	CleanStale(path)
	dir := filepath.Dir(path)
	for try := 0; ; try++ {
		name := filepath.Join(dir, tempName(path))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		return &File{File: f, path: path}, nil
	}
}

// Path is the destination that Commit renames the file to.
func (f *File) Path() string { return f.path }

// Commit syncs the file to disk, closes it, renames it into place and syncs
// the directory, so the new content survives a crash once Commit returns.
// On error the temporary is removed and the destination is unchanged.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already closed", f.path)
	}
	f.done = true
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.File.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	return syncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary; the destination is left as it
// was. It does nothing after Commit, so `defer f.Abort()` is safe.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// Write writes path atomically with what write produces (through a 64 KiB
// buffer). An error from write leaves path untouched.
func Write(path string, write func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// WriteFile writes data to path atomically, with mode 0644.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// TempDir creates an empty directory beside dir (mode 0755) to build dir's
// new content in; ReplaceDir puts it in place. It first removes what killed
// writers of dir left behind, and creates dir's parent if needed.
func TempDir(dir string) (string, error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	CleanStale(dir)
	for try := 0; ; try++ {
		name := filepath.Join(parent, tempName(dir))
		err := os.Mkdir(name, 0o755)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", dir, err)
		}
		return name, nil
	}
}

// ReplaceDir syncs every file under tmp to disk and renames tmp to dir. An
// existing dir is first moved aside (and removed at the end), so a complete
// dir exists at every moment; callers check with Guard that dir is theirs to
// replace. On error dir is as it was and tmp is left for the caller.
func ReplaceDir(tmp, dir string) error {
	dir = filepath.Clean(dir)
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("%s: removing the replaced copy: %w", dir, err)
		}
	}
	return nil
}

// CleanStale removes the temporaries of path (".BASE.tmp…" beside it) whose
// writing process no longer runs, and returns the names it removed. Those of
// a live process are kept: another run may be writing them right now.
// Removal is best-effort: a temporary that cannot be removed is skipped.
func CleanStale(path string) []string {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	prefix := "." + filepath.Base(path) + ".tmp"
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		pid, ok := tempPID(strings.TrimPrefix(name, prefix))
		if !ok || processAlive(pid) {
			continue
		}
		full := filepath.Join(dir, name)
		if err := os.RemoveAll(full); err == nil {
			removed = append(removed, full)
		}
	}
	return removed
}

// tempName is a fresh temporary name for path: ".BASE.tmp-PID-RANDOM".
func tempName(path string) string {
	return fmt.Sprintf(".%s.tmp-%d-%d", filepath.Base(path), os.Getpid(), rand.Uint32())
}

// tempPID reads the writer's process id from what follows ".BASE.tmp":
// "-PID-RANDOM[.old]" as tempName writes it, or the digits that
// os.CreateTemp and os.MkdirTemp appended in earlier versions
// ("-123456", "123456"), which are read the same way: a number that is no
// live process marks an abandoned temporary either way.
func tempPID(rest string) (int, bool) {
	rest = strings.TrimPrefix(rest, "-")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == 0 || (end < len(rest) && rest[end] != '-' && rest[end] != '.') {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with this id exists. A number out
// of the pid range is no process.
func processAlive(pid int) bool {
	if pid <= 0 || pid > 1<<22 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// syncTree syncs every regular file under root, then every directory.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// syncDir syncs a directory, so that a rename inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
