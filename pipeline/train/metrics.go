package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/onnx/ort"
)

// Metrics is one line of metrics.jsonl: one training iteration. Field names
// are those of the flags and of `igsearch plot`.
type Metrics struct {
	Iter       int     `json:"iter"`
	Step       int64   `json:"step"` // optimiser steps so far
	LR         float64 `json:"lr"`
	Reward     float64 `json:"reward"`
	EM         float64 `json:"em"`
	FormatRate float64 `json:"format_rate"`
	// IG statistics over the scored search steps of the iteration.
	IGMean     float64 `json:"ig_mean"`
	IGStd      float64 `json:"ig_std"`
	IGPosRatio float64 `json:"ig_pos_ratio"`
	IGSteps    int     `json:"ig_steps"`
	// IGTokens is the number of tokens the IG scoring ran through the
	// model, and IGContext the mean number of tokens before each in its
	// sequence (what it attends to): the work behind TimeIG.
	IGTokens      int     `json:"ig_tokens"`
	IGContext     float64 `json:"ig_context"`
	AllFailGroups float64 `json:"all_fail_groups"` // fraction of groups with every EM = 0
	// AllFailWithGradient is the fraction of all-fail groups whose
	// advantages are not all zero (the IG term still carries a gradient).
	AllFailWithGradient float64 `json:"all_fail_with_gradient"`
	Searches            float64 `json:"searches"`        // mean searches per trajectory
	ResponseLength      float64 `json:"response_length"` // mean response tokens
	Loss                float64 `json:"loss"`
	KL                  float64 `json:"kl"`
	ClipFraction        float64 `json:"clip_fraction"`
	GradNorm            float64 `json:"grad_norm"`
	Entropy             float64 `json:"entropy,omitempty"`
	// Timings per phase in seconds, and IG's share of the iteration.
	TimeRollout float64 `json:"time_rollout"`
	TimeIG      float64 `json:"time_ig"`
	TimeRef     float64 `json:"time_ref"`
	TimeTrain   float64 `json:"time_train"`
	TimeTotal   float64 `json:"time_total"`
	IGShare     float64 `json:"ig_share"`
	// Transfers is what crossed between Go memory and ONNX Runtime during
	// the iteration (the boundary meter, ort.MeteredTransfers), by phase:
	// "prefill", "decode", "ig/…", "train", …; TransferBytes is its total,
	// both ways. On a device these bytes cross PCIe.
	Transfers     ort.Transfers `json:"transfers,omitempty"`
	TransferBytes int64         `json:"transfer_bytes"`
	// Dev evaluation, when run at this iteration: EM over all questions,
	// and n, EM and F1 per data_source.
	DevEM       *float64         `json:"dev_em,omitempty"`
	DevBySource map[string]Score `json:"dev_by_source,omitempty"`
}

// metricsLog appends lines to metrics.jsonl, fsyncing each, so that a killed
// run loses at most the line being written.
type metricsLog struct {
	f *os.File
}

// openMetrics opens path for appending. When resuming at iteration iter,
// lines of later iterations (written after the checkpoint a run was killed
// past) are dropped first, so the log matches the resumed state.
func openMetrics(path string, resumeIter int) (*metricsLog, error) {
	if resumeIter > 0 {
		if err := truncateMetrics(path, resumeIter); err != nil {
			return nil, err
		}
	} else if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f: f}, nil
}

func truncateMetrics(path string, keepBelow int) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var m struct {
			Iter int `json:"iter"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			break // a torn last line
		}
		if m.Iter >= keepBelow {
			break
		}
		kept.Write(sc.Bytes())
		kept.WriteByte('\n')
	}
	return atomicfile.WriteFile(path, kept.Bytes())
}

func (l *metricsLog) write(m Metrics) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(js, '\n')); err != nil {
		return fmt.Errorf("metrics %s: %w", l.f.Name(), err)
	}
	return l.f.Sync()
}

func (l *metricsLog) close() error { return l.f.Close() }
