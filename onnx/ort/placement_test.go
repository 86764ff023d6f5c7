package ort

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

const tinyQwen2Model = "../../testdata/models/tiny-qwen2/model.onnx"

// newSessionLevelForTest is NewSession at graph optimisation level lvl,
// with ONNX Runtime writing the optimised graph to optimized ("": not).
func newSessionLevelForTest(t *testing.T, path string, opts Options, lvl ortgo.GraphOptimizationLevel, optimized string) *Session {
	t.Helper()
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(lvl); err != nil {
		t.Fatal(err)
	}
	if optimized != "" {
		if err := so.SetOptimizedModelFilePath(optimized); err != nil {
			t.Fatal(err)
		}
	}
	ins, outs := graphIO(m.Graph)
	s, err := ortgo.NewDynamicAdvancedSession(path, names(ins), names(outs), so)
	if err != nil {
		t.Fatal(err)
	}
	sess := newSession(path, s, ins, outs)
	t.Cleanup(func() { sess.Close() })
	return sess
}

// opCounts counts a graph's nodes by op type.
func opCounts(g *onnx.Graph) map[string]int {
	n := map[string]int{}
	for _, x := range g.Nodes {
		n[x.Op]++
	}
	return n
}

// TestPlacementTinyQwen2CPU reads the placement of the tiny Qwen2 export
// (468 nodes in the file) on the CPU. Every node is on the CPU provider, and
// the counts by op type are those of an independent source: the graph that
// ONNX Runtime itself writes (SetOptimizedModelFilePath) after the basic
// optimisations, the point at which it partitions the graph. The session
// is at the default level (all optimisations): the later CPU fusions
// (FusedMatMul, SimplifiedLayerNormalization, QuickGelu), visible in the
// graph written at that level, do not change the placement read.
func TestPlacementTinyQwen2CPU(t *testing.T) {
	m, err := onnx.LoadWith(tinyQwen2Model, onnx.LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	basic := filepath.Join(dir, "basic.onnx")
	newSessionLevelForTest(t, tinyQwen2Model, Options{IntraOpThreads: 1}, ortgo.GraphOptimizationLevelEnableBasic, basic)
	bm, err := onnx.LoadWith(basic, onnx.LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	want := opCounts(bm.Graph)

	all := filepath.Join(dir, "all.onnx")
	s := newSessionLevelForTest(t, tinyQwen2Model, Options{IntraOpThreads: 1, RecordPlacement: true}, ortgo.GraphOptimizationLevelEnableAll, all)
	p, err := s.Placement()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file: %d nodes; placement:\n%s", len(m.Graph.Nodes), p)
	if len(p.Nodes) != 1 || p.Count(cpuEP) == 0 {
		t.Fatalf("placement on providers %v, want %s only", p.Nodes, cpuEP)
	}
	if got := p.Nodes[cpuEP]; !maps.Equal(got, want) {
		t.Errorf("placement by op\n got %s\nwant %s (ONNX Runtime's graph after basic optimisations)", formatCounts(got), formatCounts(want))
	}
	if n := p.Count(""); n != len(bm.Graph.Nodes) || n >= len(m.Graph.Nodes) {
		t.Errorf("%d nodes placed, want %d (optimised from %d)", n, len(bm.Graph.Nodes), len(m.Graph.Nodes))
	}
	// The tiny model has 2 layers: 2×7 linear MatMuls + 2×2 attention
	// MatMuls + the lm_head = 19, and one Softmax per layer.
	if p.Nodes[cpuEP]["MatMul"] != 19 || p.Nodes[cpuEP]["Softmax"] != 2 {
		t.Errorf("MatMul %d Softmax %d, want 19 and 2", p.Nodes[cpuEP]["MatMul"], p.Nodes[cpuEP]["Softmax"])
	}
	am, err := onnx.LoadWith(all, onnx.LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the fully optimised graph: %d nodes (%s)", len(am.Graph.Nodes), formatCounts(opCounts(am.Graph)))
}

// TestPlacementNotRecorded: without RecordPlacement, ONNX Runtime keeps no
// placement and Placement says how to get one.
func TestPlacementNotRecorded(t *testing.T) {
	s, err := NewSession(tinyQwen2Model, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Placement(); err == nil || !strings.Contains(err.Error(), "RecordPlacement") {
		t.Fatalf("Placement of an unrecorded session: err = %v", err)
	}
	if err := s.checkPlacement(Options{}); err != nil {
		t.Fatalf("CPU sessions are not checked: %v", err)
	}
}

// TestCheckPlacement drives the device check with a CPU session posing as
// a CUDA one: its MatMuls and Softmaxes are on the CPU provider, which is
// what a CUDA session that falls back looks like. It warns by default and
// fails under StrictPlacement (option or process default).
func TestCheckPlacement(t *testing.T) {
	s, err := NewSession(tinyQwen2Model, Options{IntraOpThreads: 1, RecordPlacement: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var warn bytes.Buffer
	placementWarnings = &warn
	defer func() { placementWarnings = os.Stderr }()
	cuda := Options{Device: Device{CUDA: true}}
	if err := s.checkPlacement(cuda); err != nil {
		t.Fatalf("non-strict check failed: %v", err)
	}
	if w := warn.String(); !strings.Contains(w, "21 attention/MatMul nodes run on the CPU execution provider (MatMul 19, Softmax 2)") {
		t.Errorf("warning %q", w)
	}
	cuda.StrictPlacement = true
	warn.Reset()
	err = s.checkPlacement(cuda)
	if w := warn.String(); !strings.HasPrefix(w, "placement "+tinyQwen2Model+" on cuda:0: CPUExecutionProvider 192 nodes\n") {
		t.Errorf("strict check's placement line %q", w)
	}
	if err == nil || !strings.Contains(err.Error(), "MatMul 19, Softmax 2") || !strings.Contains(err.Error(), "CPUExecutionProvider: ") {
		t.Fatalf("strict check: err = %v", err)
	}
	SetStrictPlacement(true)
	defer SetStrictPlacement(false)
	if err := s.checkPlacement(Options{Device: Device{CUDA: true}}); err == nil {
		t.Fatal("SetStrictPlacement(true): the check passed")
	}
}

// TestPlacementCost measures what recording placement adds to making a
// session of a graph of 2,000 nodes, to justify recording it always on
// devices and only on request on the CPU.
func TestPlacementCost(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	g := onnx.NewGraph("chain")
	x := g.Input("x", onnx.Float, onnx.Sym("n"), onnx.D(8))
	w := g.Const(onnx.FloatTensor([]int64{8, 8}, make([]float32, 64)))
	for range 1000 {
		x = g.Add(g.MatMul(x, w), x)
	}
	g.Output("y", x)
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	make := func(record bool) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			t0 := time.Now()
			s, err := NewSessionFromBytes(b, Options{IntraOpThreads: 1, RecordPlacement: record})
			d := time.Since(t0)
			if err != nil {
				t.Fatal(err)
			}
			if record {
				if p, err := s.Placement(); err != nil || p.Count(cpuEP) == 0 {
					t.Fatalf("placement %d nodes, %v", p.Count(cpuEP), err)
				}
			}
			s.Close()
			best = min(best, d)
		}
		return best
	}
	off, on := make(false), make(true)
	t.Logf("session of 2,000 nodes: %v without placement, %v with (best of 3)", off, on)
}
