package policy

import "testing"

func TestKVClass(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 80, 81, 96, 97, 128, 129, 1000, 4096, 4097, 1 << 20, 3<<20 + 1} {
		class, capacity := kvClass(n)
		if capacity < n {
			t.Errorf("kvClass(%d) capacity %d < n", n, capacity)
		}
		if n > 64 && 4*capacity > 5*n+4 {
			t.Errorf("kvClass(%d) capacity %d wastes more than a quarter", n, capacity)
		}
		if c2, cap2 := kvClass(capacity); c2 != class || cap2 != capacity {
			t.Errorf("kvClass(%d) = %d, %d; its capacity maps to %d, %d", n, class, capacity, c2, cap2)
		}
	}
	c100, _ := kvClass(100)
	c200, _ := kvClass(200)
	if c100 == c200 {
		t.Errorf("100 and 200 floats share a class")
	}
}

func TestGetKVZeroedAfterReuse(t *testing.T) {
	b := getKV(1000)
	for i := range b {
		b[i] = float32(i + 1)
	}
	putKV(b)
	c := getKV(990) // same class: the buffer above comes back
	if len(c) != 990 {
		t.Fatalf("len %d, want 990", len(c))
	}
	if &c[0] != &b[0] {
		t.Errorf("the released buffer was not reused")
	}
	for i, v := range c {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d: %v", i, v)
		}
	}
	putKV(make([]float32, 10, 77)) // not a class capacity: ignored
}
