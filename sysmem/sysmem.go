// Package sysmem tells how much memory this process may still allocate, so
// that a stage can refuse a size that cannot fit with a clear error before
// allocating, instead of dying in the Go runtime's "fatal error: out of
// memory" with a stack trace.
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Available is the memory the system can give this process now, in bytes:
// MemAvailable from /proc/meminfo, lowered to the cgroup's remaining limit
// when the process runs in a memory-limited cgroup (v2 memory.max minus
// memory.current, or v1 limit_in_bytes minus usage_in_bytes). ok is false
// where neither can be read (not Linux): the caller then cannot check.
func Available() (bytes uint64, ok bool) {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if v, found := meminfoAvailable(b); found {
			bytes, ok = v, true
		}
	}
	if lim, found := cgroupRemaining(); found && (!ok || lim < bytes) {
		bytes, ok = lim, true
	}
	return bytes, ok
}

// Check returns an error when need bytes for what (e.g. "the weights of
// config.json") exceed Available. It passes where memory cannot be read.
func Check(what string, need uint64) error {
	avail, ok := Available()
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("%s need %s of memory, and %s is available: refusing to start", what, Format(need), Format(avail))
}

// Format writes a byte count with a binary unit: "1.5 GiB".
func Format(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	x, u := float64(n), 0
	for x >= 1024 && u < len(units)-1 {
		x /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", x, units[u])
}

// meminfoAvailable reads "MemAvailable: N kB" from /proc/meminfo's text.
func meminfoAvailable(b []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

// cgroupRemaining is the cgroup's memory limit minus its usage, where a
// limit is set.
func cgroupRemaining() (uint64, bool) {
	for _, p := range [][2]string{
		{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
		{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
	} {
		lim, ok1 := readUint(p[0])
		use, ok2 := readUint(p[1])
		if !ok1 || !ok2 || lim >= 1<<60 { // "max", or v1's "no limit" near 2^63
			continue
		}
		if use > lim {
			return 0, true
		}
		return lim - use, true
	}
	return 0, false
}

func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}
