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
