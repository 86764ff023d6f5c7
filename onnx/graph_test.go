package onnx

import "testing"

func TestShapeInference(t *testing.T) {
	g := NewGraph("t")
	x := g.Input("x", Float, Sym("batch"), Sym("seq"), D(64))
	w := g.Initializer("w", FloatTensor([]int64{64, 32}, make([]float32, 64*32)))
	y := g.MatMul(x, w)
	if got := y.Shape.String(); got != "[batch,seq,32]" {
		t.Fatalf("MatMul shape %s", got)
	}
	h := g.Reshape(y, 0, 0, 4, 8)
	if got := h.Shape.String(); got != "[batch,seq,4,8]" {
		t.Fatalf("Reshape shape %s", got)
	}
	p := g.Transpose(h, 0, 2, 1, 3)
	if got := p.Shape.String(); got != "[batch,4,seq,8]" {
		t.Fatalf("Transpose shape %s", got)
	}
	s := g.ReduceSum(p, true, -1)
	if got := s.Shape.String(); got != "[batch,4,seq,1]" {
		t.Fatalf("ReduceSum shape %s", got)
	}
	b := g.Add(s, g.Initializer("bias", FloatTensor([]int64{4, 1, 1}, make([]float32, 4))))
	if got := b.Shape.String(); got != "[batch,4,seq,1]" {
		t.Fatalf("Add shape %s", got)
	}
	u := g.Unsqueeze(g.Squeeze(b, 3), 1)
	if got := u.Shape.String(); got != "[batch,1,4,seq]" {
		t.Fatalf("Squeeze/Unsqueeze shape %s", got)
	}
	sl := g.Slice(g.Reshape(w, 2048), []int64{0}, []int64{1}, []int64{-1})
	if got := sl.Shape.String(); got != "[2046]" {
		t.Fatalf("Slice shape %s", got)
	}
	e := g.Gather(w, g.Input("ids", Int64, Sym("batch"), Sym("seq")), 0)
	if got := e.Shape.String(); got != "[batch,seq,32]" {
		t.Fatalf("Gather shape %s", got)
	}
	if out := g.Output("y", y); out.Name != "y" || len(g.Outputs) != 1 {
		t.Fatalf("Output: %v", out)
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {6.103515625e-05, 0x0400}, {5.960464477539063e-08, 0x0001}, {0.1, 0x2e66}}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.h {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
		if c.f != 0.1 {
			if got := Float16ToFloat32(c.h); got != c.f {
				t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", c.h, got, c.f)
			}
		}
	}
}
