package ort

import (
	"context"
	"maps"
	"sort"
	"sync"
)

// The boundary meter counts the bytes that cross between Go memory and
// ORT-owned memory: every Go-memory tensor bound to a run (ONNX Runtime
// copies it to the device; on the CPU it reads it in place, but it would
// cross on a device), every output written into Go memory, and every read of
// an ORT-owned tensor into Go memory. Copies between ORT-owned tensors do
// not cross. On the CPU, ORT-owned memory stands in for the device, so the
// meter says what a CUDA run of the same code would move over PCIe.
//
// Counts are kept per phase, a label that the caller attaches to a context
// (WithPhase) and that runs and the tensors they return carry.

// Transfer is what crossed the boundary in one phase.
type Transfer struct {
	// Runs is the number of session runs.
	Runs int64 `json:"runs"`
	// ToORT is the bytes of Go-memory inputs bound to runs, and of
	// Go-memory tensors copied into ORT-owned ones.
	ToORT int64 `json:"to_ort_bytes"`
	// FromORT is the bytes of outputs written into Go memory, and of
	// ORT-owned tensors read into Go memory.
	FromORT int64 `json:"from_ort_bytes"`
}

// Bytes is ToORT + FromORT.
func (t Transfer) Bytes() int64 { return t.ToORT + t.FromORT }

// Sub is t − u, field by field (what crossed between two snapshots).
func (t Transfer) Sub(u Transfer) Transfer {
	return Transfer{Runs: t.Runs - u.Runs, ToORT: t.ToORT - u.ToORT, FromORT: t.FromORT - u.FromORT}
}

// Transfers is a snapshot of the meter by phase.
type Transfers map[string]Transfer

// Sub is what crossed in each phase between snapshot u and t.
func (t Transfers) Sub(u Transfers) Transfers {
	out := Transfers{}
	for k, v := range t {
		if d := v.Sub(u[k]); d != (Transfer{}) {
			out[k] = d
		}
	}
	return out
}

// Total sums every phase.
func (t Transfers) Total() Transfer {
	var s Transfer
	for _, v := range t {
		s.Runs += v.Runs
		s.ToORT += v.ToORT
		s.FromORT += v.FromORT
	}
	return s
}

// Phases lists the phases in order.
func (t Transfers) Phases() []string {
	k := make([]string, 0, len(t))
	for p := range t {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

var meter struct {
	mu sync.Mutex
	by Transfers
}

// MeteredTransfers returns the meter's counts since the process started.
// Take two snapshots and Sub them to measure a stretch of work.
func MeteredTransfers() Transfers {
	meter.mu.Lock()
	defer meter.mu.Unlock()
	return maps.Clone(meter.by)
}

func count(phase string, runs, to, from int64) {
	if runs == 0 && to == 0 && from == 0 {
		return
	}
	if phase == "" {
		phase = "other"
	}
	meter.mu.Lock()
	defer meter.mu.Unlock()
	if meter.by == nil {
		meter.by = Transfers{}
	}
	t := meter.by[phase]
	t.Runs += runs
	t.ToORT += to
	t.FromORT += from
	meter.by[phase] = t
}

type phaseKey struct{}

// WithPhase labels the runs made under ctx, and the tensors they return,
// with phase; a label already on ctx becomes its prefix ("ig/prefill").
func WithPhase(ctx context.Context, phase string) context.Context {
	if outer := Phase(ctx); outer != "" {
		phase = outer + "/" + phase
	}
	return context.WithValue(ctx, phaseKey{}, phase)
}

// Phase is ctx's phase label, "" if none.
func Phase(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	p, _ := ctx.Value(phaseKey{}).(string)
	return p
}
