package ort

// Node placement: which execution provider ONNX Runtime gave each node of a
// session, read through OrtApi::Session_GetEpGraphAssignmentInfo (ORT ≥
// 1.24), which onnxruntime_go v1.27 does not wrap. ONNX Runtime records it
// only for sessions created with the config entry
// session.record_ep_graph_assignment_info=1 (sessionOptions adds it when
// Options.recordPlacement says so).
//
// A CUDA session puts on the CPU execution provider every node whose op or
// type CUDA has no kernel for, silently (ORT logs it at a level below the
// one this package sets). An attention or MatMul node placed there copies
// its activations over PCIe on every run; checkPlacement warns about, or
// refuses, such sessions.

/*
#cgo CFLAGS: -O2 -I${SRCDIR}/include
#include "placement.h"
*/
import "C"

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"
)

// placementConfigKey is the session config entry that makes ONNX Runtime
// record node placement.
const placementConfigKey = "session.record_ep_graph_assignment_info"

// DeviceOps are the op types that a session on a device must not leave on
// the CPU execution provider: attention (ONNX Runtime's contrib kernels and
// ONNX's own) and the matrix products, which include the MatMul and Softmax
// of standard (unfused) attention.
var DeviceOps = []string{
	"Attention", "GroupQueryAttention", "MultiHeadAttention",
	"MatMul", "FusedMatMul", "Gemm", "Softmax",
}

// Placement counts a session's nodes by execution provider and op type, as
// ONNX Runtime assigned them when it partitioned the graph: after its basic
// optimisations (constant folding, redundant-node removal), before the
// provider-specific fusions, so a MatMul that the CPU provider later fuses
// into a FusedMatMul counts as a MatMul.
type Placement struct {
	// Nodes maps an execution provider's name ("CPUExecutionProvider",
	// "CUDAExecutionProvider") to its node count by op type (the op type
	// alone, without its domain).
	Nodes map[string]map[string]int
}

// Count is the number of nodes on execution provider ep ("": on every
// provider).
func (p Placement) Count(ep string) int {
	n := 0
	for e, ops := range p.Nodes {
		if ep != "" && e != ep {
			continue
		}
		for _, c := range ops {
			n += c
		}
	}
	return n
}

// Ops sums the node counts by op type over every execution provider.
func (p Placement) Ops() map[string]int {
	out := map[string]int{}
	for _, ops := range p.Nodes {
		for op, c := range ops {
			out[op] += c
		}
	}
	return out
}

// Misplaced counts, by op type, the nodes of the given op types (DeviceOps
// if none) that landed on the CPU execution provider.
func (p Placement) Misplaced(ops ...string) map[string]int {
	if len(ops) == 0 {
		ops = DeviceOps
	}
	out := map[string]int{}
	for _, op := range ops {
		if c := p.Nodes[cpuEP][op]; c > 0 {
			out[op] = c
		}
	}
	return out
}

// String lists the counts in one line per execution provider, e.g.
// "CUDAExecutionProvider: 412 nodes (MatMul 168, Add 97, …)".
func (p Placement) String() string {
	eps := make([]string, 0, len(p.Nodes))
	for ep := range p.Nodes {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	var b strings.Builder
	for i, ep := range eps {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: %d nodes (%s)", ep, p.Count(ep), formatCounts(p.Nodes[ep]))
	}
	return b.String()
}

// line is the placement in one line: each provider's node count, with the
// CPU provider's op types (on a device, the nodes that it keeps).
func (p Placement) line() string {
	eps := make([]string, 0, len(p.Nodes))
	for ep := range p.Nodes {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	parts := make([]string, len(eps))
	for i, ep := range eps {
		parts[i] = fmt.Sprintf("%s %d nodes", ep, p.Count(ep))
		if ep == cpuEP && len(eps) > 1 {
			parts[i] += " (" + formatCounts(p.Nodes[ep]) + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// formatCounts is "op n, op n, …", the largest count first.
func formatCounts(m map[string]int) string {
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if m[ops[i]] != m[ops[j]] {
			return m[ops[i]] > m[ops[j]]
		}
		return ops[i] < ops[j]
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, m[op])
	}
	return strings.Join(parts, ", ")
}

// Placement reads where ONNX Runtime placed the session's nodes. It needs a
// session made with Options.RecordPlacement (or on a device, where it is
// always recorded).
func (s *Session) Placement() (Placement, error) {
	api, err := ortAPI()
	if err != nil {
		return Placement{}, err
	}
	h, err := s.sessionHandle()
	if err != nil {
		return Placement{}, err
	}
	var sgs **C.OrtEpAssignedSubgraph
	var n C.size_t
	if err := statusError(api, C.igs_ep_subgraphs(api, h, (***C.OrtEpAssignedSubgraph)(unsafe.Pointer(&sgs)), &n)); err != nil {
		return Placement{}, fmt.Errorf("ort: %s: node placement (was the session made with Options.RecordPlacement?): %w", s.name, err)
	}
	p := Placement{Nodes: map[string]map[string]int{}}
	for i := range C.size_t(n) {
		var ep *C.char
		var nodes **C.OrtEpAssignedNode
		var m C.size_t
		if err := statusError(api, C.igs_ep_subgraph(api, (**C.OrtEpAssignedSubgraph)(unsafe.Pointer(sgs)), i, &ep, (***C.OrtEpAssignedNode)(unsafe.Pointer(&nodes)), &m)); err != nil {
			return Placement{}, fmt.Errorf("ort: %s: node placement: subgraph %d: %w", s.name, i, err)
		}
		name := C.GoString(ep)
		ops := p.Nodes[name]
		if ops == nil {
			ops = map[string]int{}
			p.Nodes[name] = ops
		}
		for j := range C.size_t(m) {
			var nodeName, domain, op *C.char
			if err := statusError(api, C.igs_ep_node(api, (**C.OrtEpAssignedNode)(unsafe.Pointer(nodes)), j, &nodeName, &domain, &op)); err != nil {
				return Placement{}, fmt.Errorf("ort: %s: node placement: subgraph %d node %d: %w", s.name, i, j, err)
			}
			ops[C.GoString(op)]++
		}
	}
	return p, nil
}

// strictPlacement is the process default of Options.StrictPlacement.
var strictPlacement atomic.Bool

// SetStrictPlacement sets the default of Options.StrictPlacement for the
// sessions this process makes from now on: a command line's check run
// (--strict-placement) sets it once, before any session, for the sessions
// that libraries make on its behalf; code that makes its own sessions sets
// Options.StrictPlacement instead.
func SetStrictPlacement(strict bool) { strictPlacement.Store(strict) }

// recordPlacement reports whether sessions made with opts record their
// node placement: on request, and always on a device, where it is checked.
func (opts Options) recordPlacement() bool {
	return opts.RecordPlacement || opts.StrictPlacement || opts.Device.CUDA
}

// placementWarnings is where checkPlacement warns (a test swaps it).
var placementWarnings io.Writer = os.Stderr

// checkPlacement checks a new device session: its DeviceOps nodes must not
// be on the CPU execution provider. It warns on stderr with their count, or
// fails when opts.StrictPlacement (or SetStrictPlacement) is set; strict
// checks also print each session's placement in one line on stderr
// ("placement SESSION on cuda:0: CPUExecutionProvider 37 nodes (…),
// CUDAExecutionProvider 412 nodes"). CPU sessions pass unchecked.
func (s *Session) checkPlacement(opts Options) error {
	if !opts.Device.CUDA {
		return nil
	}
	strict := opts.StrictPlacement || strictPlacement.Load()
	p, err := s.Placement()
	if err != nil {
		if strict {
			return err
		}
		fmt.Fprintf(placementWarnings, "igsearch: warning: %v\n", err)
		return nil
	}
	if strict {
		// A check run reports every device session's placement.
		fmt.Fprintf(placementWarnings, "placement %s on %s: %s\n", s.name, opts.Device, p.line())
	}
	bad := p.Misplaced()
	if len(bad) == 0 {
		return nil
	}
	n := 0
	for _, c := range bad {
		n += c
	}
	msg := fmt.Sprintf("ort: %s on %s: %d attention/MatMul nodes run on the CPU execution provider (%s), so their activations cross PCIe on every run; a float32 graph with GroupQueryAttention does this (CUDA has fp16/bf16 kernels only)",
		s.name, opts.Device, n, formatCounts(bad))
	if strict {
		return fmt.Errorf("%s; placement:\n%s", msg, p)
	}
	fmt.Fprintf(placementWarnings, "igsearch: warning: %s\n", msg)
	return nil
}

// checked runs checkPlacement on a session just made (s, err), closing it
// if the check fails.
func checked(s *Session, err error, opts Options) (*Session, error) {
	if err != nil {
		return nil, err
	}
	if err := s.checkPlacement(opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
