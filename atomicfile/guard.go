package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// Kind describes what a stage writes into its output directory, so that
// Guard can tell the stage's own earlier output from a user's files.
type Kind struct {
	// Name is what the stage writes, for messages: "an index", "a checkpoint".
	Name string
	// Marker is a file that every complete output of this kind holds
	// ("meta.bin" for an index). Empty: any directory of owned entries is
	// one (a killed run leaves no marker).
	Marker string
	// Owns reports whether a top-level entry of the directory is one the
	// stage writes.
	Owns func(name string) bool
}

// Errors of Guard, for callers that branch on them.
var (
	// ErrForeign marks a directory holding something the stage does not write.
	ErrForeign = errors.New("holds files this stage does not write")
	// ErrExists marks the stage's own earlier output, which may be replaced
	// only when the user asks.
	ErrExists = errors.New("holds an earlier output")
)

// Guard checks that dir may be written as an output of kind k. A directory
// that does not exist, or is empty, may. One holding any entry that k does
// not own never may: nothing a user has is deleted. One holding only k's own
// entries (and k's Marker) may when replace is true; otherwise the error
// names replaceFlag, the flag that allows it. Temporaries of owned entries
// (".NAME.tmp…") count as owned.
func Guard(dir string, k Kind, replace bool, replaceFlag string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is a file, not %s: %w; refusing to replace it", dir, k.Name, ErrForeign)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	var foreign []string
	hasMarker := k.Marker == ""
	for _, e := range ents {
		name := e.Name()
		if name == k.Marker {
			hasMarker = true
		}
		if !k.Owns(name) && !ownedTemp(name, k) {
			foreign = append(foreign, name)
		}
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		if len(foreign) > 5 {
			foreign = append(foreign[:5], fmt.Sprintf("and %d more", len(foreign)-5))
		}
		return fmt.Errorf("%s exists and %w (%s), so it is not %s; refusing to replace it: choose another output directory or move those files away",
			dir, ErrForeign, strings.Join(foreign, ", "), k.Name)
	}
	if !hasMarker {
		return fmt.Errorf("%s exists but has no %s, so it is not %s: %w; refusing to replace it", dir, k.Marker, k.Name, ErrForeign)
	}
	if !replace {
		return fmt.Errorf("%s %w (%s); pass %s to replace it", dir, ErrExists, k.Name, replaceFlag)
	}
	return nil
}

// ownedTemp reports whether name is a temporary (".X.tmp…") of an entry X
// that k owns.
func ownedTemp(name string, k Kind) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	i := strings.Index(name, ".tmp")
	return i > 1 && k.Owns(name[1:i])
}
