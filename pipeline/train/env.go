package train

import (
	"fmt"
	"path/filepath"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
	"github.com/igsearch/igsearch/trainer"
)

// environment holds what every iteration shares: the runtime, tokenizer,
// protocol, retriever and the parsed configuration.
type environment struct {
	cfg           Config
	device        ort.Device
	tok           *tokenize.Tokenizer
	tokenizerPath string
	proto         protocol.Protocol
	rewardCfg     reward.Config
	igCfg         ig.Config
	retr          index.Retriever
	ix            *index.Index // the in-process index, nil with a remote retriever
	closeRetr     func() error
}

func openEnv(cfg Config) (*environment, error) { return openEnvRetriever(cfg, true) }

// openEnvRetriever is openEnv, opening the retriever only when withRetriever.
func openEnvRetriever(cfg Config, withRetriever bool) (*environment, error) {
	dev, err := ort.ParseDevice(cfg.Model.Device)
	if err != nil {
		return nil, err
	}
	if _, err := ort.InitDefault(cfg.Model.ORTLib, dev); err != nil {
		return nil, err
	}
	env := &environment{cfg: cfg, device: dev}
	env.tokenizerPath = cfg.Model.Tokenizer
	if env.tokenizerPath == "" {
		env.tokenizerPath = filepath.Join(cfg.Model.Path, "tokenizer.json")
	}
	if env.tok, err = tokenize.Load(env.tokenizerPath); err != nil {
		return nil, err
	}
	if env.proto, err = protocol.Lookup(cfg.Rollout.Protocol); err != nil {
		return nil, err
	}
	env.rewardCfg = reward.DefaultConfig()
	if env.rewardCfg.Metric, err = reward.ParseMetric(cfg.Reward.Metric); err != nil {
		return nil, err
	}
	env.rewardCfg.FormatReward = cfg.Reward.FormatReward
	if env.igCfg, err = igConfig(cfg.IG); err != nil {
		return nil, err
	}
	if withRetriever {
		if err := env.openRetriever(); err != nil {
			return nil, err
		}
	}
	return env, nil
}

func (e *environment) close() {
	if e.closeRetr != nil {
		e.closeRetr()
	}
}

func igConfig(c IGConfig) (ig.Config, error) {
	out := ig.DefaultConfig()
	var err error
	out.Random = c.Random
	out.MaxContext = c.MaxContext
	if out.Gold, err = ig.ParseGold(c.Gold); err != nil {
		return out, err
	}
	if out.Counterfactual, err = ig.ParseCounterfactual(c.Counterfactual); err != nil {
		return out, err
	}
	return out, nil
}

func (e *environment) advantageConfig(cfg Config) (advantage.Config, error) {
	a := advantage.DefaultConfig()
	var err error
	if a.AdvNorm, err = advantage.ParseAdvNorm(cfg.IG.AdvNorm); err != nil {
		return a, err
	}
	if a.IGNorm, err = advantage.ParseIGNorm(cfg.IG.Norm); err != nil {
		return a, err
	}
	if a.IGScope, err = advantage.ParseScope(cfg.IG.Scope); err != nil {
		return a, err
	}
	a.IGCoef = cfg.IG.Coef
	if cfg.IG.Algo == "grpo" {
		a.IGCoef = 0
	}
	return a, nil
}

func (e *environment) policyOptions() policy.Options {
	return policy.Options{Device: e.device, Threads: e.cfg.Model.Threads, ORTLib: e.cfg.Model.ORTLib, Tokenizer: e.tok}
}

// policyFromWeights is the policy for the next rollout: the trainer's
// current weights, taken in place from the trainer's host-weight block or,
// where they live on a device, from its resident tensors (no copy either
// way; with LoRA, the adapters ride along in factored form). Close it
// before the trainer's next step.
func (e *environment) policyFromWeights(tr *trainer.Trainer) (*policy.Policy, error) {
	opts := e.policyOptions()
	w, scale, resident := tr.ResidentPolicyWeights()
	opts.LoRAScale = scale
	if resident != nil {
		// The weights live where the trainer's sessions want them (a
		// device): the policy's sessions take those tensors in place.
		opts.ResidentWeights = resident
	} else {
		opts.SharedWeights = tr.HostWeights()
	}
	return policy.FromWeights(tr.Config, w, e.tok, opts)
}

// policyFromDir opens a checkpoint directory as a policy (the frozen
// reference, or the initial model for evaluation).
func (e *environment) policyFromDir(dir string) (*policy.Policy, error) {
	return policy.Open(dir, e.policyOptions())
}

// openRetriever opens the in-process index, or a client of a
// Search-R1-compatible /retrieve server. With both, searches go to the
// server (e.g. Search-R1's e5 + FAISS) and the index is opened only for
// ig_counterfactual corpus, whose random passages it draws.
func (e *environment) openRetriever() error {
	switch {
	case e.cfg.Retriever.URL != "":
		e.retr = index.NewRemoteRetriever(e.cfg.Retriever.URL)
		if e.cfg.Retriever.Index != "" && ig.Counterfactual(e.cfg.IG.Counterfactual) == ig.CounterfactualCorpus {
			ix, err := index.Open(e.cfg.Retriever.Index)
			if err != nil {
				return err
			}
			e.ix, e.closeRetr = ix, ix.Close
		}
	case e.cfg.Retriever.Index != "":
		ix, err := index.Open(e.cfg.Retriever.Index)
		if err != nil {
			return err
		}
		e.ix, e.retr, e.closeRetr = ix, ix, ix.Close
	default:
		return fmt.Errorf("train: %w", errNoRetriever)
	}
	return nil
}
