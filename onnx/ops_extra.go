package onnx

// Op helpers the model builders need beyond ops.go: rotary embeddings (Cos,
// Sin) and the ONNX Runtime RMS-norm op.

// Cos is the elementwise cosine.
func (g *Graph) Cos(x *Value) *Value { return g.unary("Cos", x, nil) }

// Sin is the elementwise sine.
func (g *Graph) Sin(x *Value) *Value { return g.unary("Sin", x, nil) }

// SimplifiedLayerNorm is ONNX Runtime's RMS norm, x / sqrt(mean(x², axis…) +
// eps) · scale over the trailing axes from axis. ORT registers it in the
// default ONNX domain (not com.microsoft), so it runs only on ONNX Runtime.
// stashType is the dtype of the internal computation (Float keeps fp16
// inputs' statistics in fp32).
func (g *Graph) SimplifiedLayerNorm(x, scale *Value, axis int, eps float32, stashType DType) *Value {
	attrs := Attrs{"axis": int64(axis), "epsilon": eps, "stash_type": int64(stashType)}
	return g.Node("SimplifiedLayerNormalization", "", []*Value{x, scale}, attrs, OutSpec{x.Type, x.Shape})[0]
}

// MatMulTransB is a·bᵀ for a [..., M, K] and a rank-2 b [N, K], as ONNX
// Runtime's com.microsoft FusedMatMul with transB. Unlike MatMul over a
// Transpose of b, it leaves a constant b as it is: ONNX Runtime would fold
// that Transpose into a transposed copy of the weight, doubling its memory,
// and could not leave the weight in memory the caller shares
// (ort.HostWeights).
func (g *Graph) MatMulTransB(a, b *Value) *Value {
	if a.Rank() < 2 || b.Rank() != 2 || a.Type != b.Type {
		panic("onnx: MatMulTransB needs a [..., M, K] and b [N, K] of one dtype: " + a.String() + ", " + b.String())
	}
	out := append(Shape{}, a.Shape[:a.Rank()-1]...)
	out = append(out, b.Shape[0])
	attrs := Attrs{"transA": int64(0), "transB": int64(1), "alpha": float32(1)}
	return g.Node("FusedMatMul", MicrosoftDomain, []*Value{a, b}, attrs, OutSpec{a.Type, out})[0]
}
