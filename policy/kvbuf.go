package policy

import (
	"math/bits"
	"sync"
)

// Every decode step binds a present-KV buffer the size of the whole cache,
// and every gather builds another. Fresh ones cost page faults and garbage
// collection: under perf, a fifth of IG scoring went to faulting in and
// returning such buffers. Released caches hand their buffers back here, up
// to kvPoolBytes in all, so the memory kept idle is bounded.
const kvPoolBytes = 16 << 20

// kvPool holds free buffers by size class: four classes per power of two,
// so a buffer is at most 25% larger than asked for.
var kvPool struct {
	sync.Mutex
	free  [4*64 + 5][][]float32
	bytes int
}

// kvClass returns the size class of n floats and its capacity.
func kvClass(n int) (class, capacity int) {
	if n <= 64 {
		return 0, 64
	}
	e := bits.Len(uint(n - 1)) // 2^(e-1) < n <= 2^e
	base := 1 << (e - 1)
	step := base / 4
	sub := (n - base + step - 1) / step // 1..4
	return 4*e + sub, base + sub*step
}

// getKV returns a zeroed buffer of n floats, as make would.
func getKV(n int) []float32 {
	class, capacity := kvClass(n)
	kvPool.Lock()
	if free := kvPool.free[class]; len(free) > 0 {
		b := free[len(free)-1]
		kvPool.free[class] = free[:len(free)-1]
		kvPool.bytes -= 4 * cap(b)
		kvPool.Unlock()
		b = b[:n]
		clear(b)
		return b
	}
	kvPool.Unlock()
	return make([]float32, n, capacity)
}

// putKV hands a buffer from getKV back; the caller must not use it again.
// Past the budget, it is left to the garbage collector.
func putKV(b []float32) {
	class, capacity := kvClass(cap(b))
	if capacity != cap(b) {
		return
	}
	kvPool.Lock()
	defer kvPool.Unlock()
	if kvPool.bytes+4*cap(b) > kvPoolBytes {
		return
	}
	kvPool.free[class] = append(kvPool.free[class], b[:0])
	kvPool.bytes += 4 * cap(b)
}
