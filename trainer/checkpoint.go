package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// Checkpoint files beside the Hugging Face layout (config.json +
// model.safetensors), which transformers loads unchanged.
const (
	OptimizerFile = "optimizer.safetensors" // AdamW moments: exp_avg.<name>, exp_avg_sq.<name>
	StateFile     = "trainer_state.json"
)

// trainerState is trainer_state.json.
type trainerState struct {
	Step     int64           `json:"step"`
	Loss     LossConfig      `json:"loss"`
	Optim    AdamWConfig     `json:"optimizer"`
	Frozen   []string        `json:"frozen,omitempty"`
	Extra    json.RawMessage `json:"extra,omitempty"`
	Producer string          `json:"producer"`
}

// Save writes the model (HF layout, F32), the optimizer state and
// trainer_state.json to dir. With LoRA the model files hold the unchanged
// base model and the adapters go to PEFT's adapter_config.json and
// adapter_model.safetensors beside them (MergedWeights gives the adapted
// model). extra (may be nil) is stored verbatim under
// "extra", for the caller's own state such as RNG seeds and the data
// position. The directory is written under a temporary name and renamed into
// place, so an interrupted save never leaves a half checkpoint; an existing
// checkpoint at dir is replaced, and a dir holding anything else is refused
// (see CheckpointKind).
func (t *Trainer) Save(dir string, extra json.RawMessage) error {
	if err := atomicfile.Guard(dir, CheckpointKind, true, ""); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := atomicfile.TempDir(dir)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	// The resident state reaches the host here, metered: on the CPU the
	// reads are views of it, from a device they are copies.
	ctx := ort.WithPhase(context.Background(), PhaseCheckpoint)
	w := qwen2.Weights{}
	for _, p := range qwen2.Params(t.Config) {
		data, err := ort.Read(ctx, t.res.params[p.Name])
		if err != nil {
			return fmt.Errorf("checkpoint %s: %s: %w", dir, p.Name, err)
		}
		w[p.Name] = &onnx.Tensor{DType: onnx.Float, Dims: p.Shape, Raw: data}
	}
	if err := qwen2.Save(tmp, t.Config, w, 0); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := t.saveAdapters(tmp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var moments []safetensors.Tensor
	for _, p := range t.art.Trainable {
		m, errM := ort.Read(ctx, t.res.m[p.Name])
		v, errV := ort.Read(ctx, t.res.v[p.Name])
		if err := errors.Join(errM, errV); err != nil {
			return fmt.Errorf("checkpoint %s: moments of %s: %w", dir, p.Name, err)
		}
		moments = append(moments,
			safetensors.Tensor{Name: "exp_avg." + p.Name, DType: safetensors.F32, Shape: p.Shape, Data: m},
			safetensors.Tensor{Name: "exp_avg_sq." + p.Name, DType: safetensors.F32, Shape: p.Shape, Data: v})
	}
	meta := map[string]string{"step": strconv.FormatInt(t.state.Step, 10), "format": "igsearch-adamw"}
	if err := safetensors.Write(filepath.Join(tmp, OptimizerFile), moments, meta); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	st := trainerState{Step: t.state.Step, Loss: t.opts.Artifact.Loss, Optim: t.opts.Optim, Extra: extra, Producer: "igsearch"}
	for _, p := range t.art.Frozen {
		st.Frozen = append(st.Frozen, p.Name)
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, StateFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	// The old checkpoint moves aside first, so that some complete
	// checkpoint exists at every moment.
	if err := atomicfile.ReplaceDir(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// CheckpointKind is what Save writes, for atomicfile.Guard: a directory
// holding only checkpoint files (a sharded model too, and the tokenizer
// files a training run copies beside it) with trainer_state.json. Save
// replaces such a directory and refuses any other, so that an --out naming
// a user's folder (or the model being trained) loses nothing.
var CheckpointKind = atomicfile.Kind{
	Name:   "a trainer checkpoint",
	Marker: StateFile,
	Owns: func(name string) bool {
		switch name {
		case "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
			OptimizerFile, StateFile, LoRAConfigFile, LoRAWeightsFile, "model.safetensors.index.json":
			return true
		}
		return strings.HasPrefix(name, "model") && strings.HasSuffix(name, ".safetensors")
	},
}

// ErrNoOptimizerState reports a checkpoint directory without optimizer
// state: a plain model checkpoint, which can start training but not resume.
var ErrNoOptimizerState = errors.New("no optimizer state")

// Resume loads a checkpoint written by Save and continues exactly where it
// left off: same weights, moments and step. opts must describe the same
// training (loss and frozen weights); the optimiser settings may change (a
// schedule sets the learning rate every step). It returns the extra state
// that Save stored.
func Resume(dir string, opts Options) (*Trainer, json.RawMessage, error) {
	js, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, fmt.Errorf("resume %s: %w: %s is missing", dir, ErrNoOptimizerState, StateFile)
		}
		return nil, nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	var st trainerState
	if err := json.Unmarshal(js, &st); err != nil {
		return nil, nil, fmt.Errorf("resume %s: %s: %w", dir, StateFile, err)
	}
	if st.Step < 0 {
		return nil, nil, fmt.Errorf("resume %s: %s: negative step %d", dir, StateFile, st.Step)
	}
	t, err := Open(dir, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	if err := t.loadAdapters(dir); err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	if err := t.loadMoments(filepath.Join(dir, OptimizerFile), st.Step); err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	t.state.Step = st.Step
	t.res.stateStale = t.res.device
	return t, st.Extra, nil
}

func (t *Trainer) loadMoments(path string, step int64) error {
	f, err := safetensors.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s is missing", ErrNoOptimizerState, path)
		}
		return err
	}
	defer f.Close()
	ctx := ort.WithPhase(context.Background(), PhaseCheckpoint)
	if s := f.Metadata()["step"]; s != strconv.FormatInt(step, 10) {
		return fmt.Errorf("%s: step %q does not match %s (step %d)", path, s, StateFile, step)
	}
	for _, p := range t.art.Trainable {
		for _, kind := range []string{"exp_avg.", "exp_avg_sq."} {
			info, data, err := f.Float32s(kind + p.Name)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if !sameShape(info.Shape, p.Shape) {
				return fmt.Errorf("%s: %s%s has shape %v, want %v", path, kind, p.Name, info.Shape, p.Shape)
			}
			dst := t.res.m
			if kind == "exp_avg_sq." {
				dst = t.res.v
			}
			if err := copyIn(ctx, dst[p.Name], data); err != nil {
				return fmt.Errorf("%s: %s%s: %w", path, kind, p.Name, err)
			}
		}
	}
	return nil
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
