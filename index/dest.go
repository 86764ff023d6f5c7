package index

import (
	"fmt"

	"github.com/igsearch/igsearch/atomicfile"
)

// DirKind is what Build writes into its output directory, for
// atomicfile.Guard: the component files, shard.json, and nothing else, with
// meta.bin as the marker. Build replaces such a directory and refuses any
// other, so an --out holding a user's files (even beside a meta.bin) loses
// nothing; the command line also asks for --force before replacing one.
var DirKind = atomicfile.Kind{
	Name:   "an index",
	Marker: "meta.bin",
	Owns: func(name string) bool {
		if name == shardInfoFile {
			return true
		}
		for _, c := range components {
			if c.file == name {
				return true
			}
		}
		return false
	},
}

// checkDest refuses to replace a directory that is neither empty nor an
// index (see DirKind).
func checkDest(dir string) error {
	if err := atomicfile.Guard(dir, DirKind, true, "--force"); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// buildTempDir is the directory a build of dir writes to, beside it; what
// killed builds of dir left there is removed first.
func buildTempDir(dir string) (string, error) {
	return atomicfile.TempDir(dir)
}

// replaceDir syncs the finished build in tmp to disk and renames it to dir,
// replacing an earlier index there.
func replaceDir(tmp, dir string) error {
	return atomicfile.ReplaceDir(tmp, dir)
}
