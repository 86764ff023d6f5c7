package qwen2

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Config is the subset of a Hugging Face Qwen2 config.json that the graphs
// need. JSON field names are HF's, so a Config round-trips through config.json.
type Config struct {
	ModelType             string  `json:"model_type"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	HeadDimension         int     `json:"head_dim,omitempty"` // 0: hidden_size / num_attention_heads
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TorchDType            string  `json:"torch_dtype,omitempty"`
	BOSTokenID            int64   `json:"bos_token_id"`
	// EOSTokenIDs holds eos_token_id, which HF writes as a number or a list.
	EOSTokenIDs []int64 `json:"-"`
	// InitializerRange is the standard deviation of Init's normal weights.
	InitializerRange float64 `json:"initializer_range,omitempty"`
	HiddenAct        string  `json:"hidden_act,omitempty"`
	UseSlidingWindow bool    `json:"use_sliding_window"`
	// RopeScaling is kept only to reject configs that set it.
	RopeScaling json.RawMessage `json:"rope_scaling,omitempty"`
}

// HeadDim is the per-head width: head_dim if set, else hidden / heads.
func (c Config) HeadDim() int {
	if c.HeadDimension > 0 {
		return c.HeadDimension
	}
	if c.NumAttentionHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// Validate checks that the config describes a Qwen2 model the builder
// supports.
func (c Config) Validate() error {
	if c.ModelType != "qwen2" {
		return fmt.Errorf("unsupported model_type %q: only \"qwen2\" is supported", c.ModelType)
	}
	switch {
	case c.HiddenSize <= 0, c.IntermediateSize <= 0, c.NumHiddenLayers <= 0, c.VocabSize <= 0:
		return fmt.Errorf("hidden_size, intermediate_size, num_hidden_layers and vocab_size must be positive")
	case c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0:
		return fmt.Errorf("num_attention_heads and num_key_value_heads must be positive")
	case c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDimension == 0 && c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("head dim %d must be even for rotary embeddings", c.HeadDim())
	case c.RMSNormEps <= 0 || c.RopeTheta <= 0:
		return fmt.Errorf("rms_norm_eps and rope_theta must be positive")
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return fmt.Errorf("unsupported hidden_act %q: only silu", c.HiddenAct)
	case c.UseSlidingWindow:
		return fmt.Errorf("use_sliding_window is not supported")
	case len(c.RopeScaling) > 0 && string(c.RopeScaling) != "null":
		return fmt.Errorf("rope_scaling %s is not supported", c.RopeScaling)
	}
	return nil
}

// UnmarshalJSON reads HF config.json, accepting eos_token_id as a number or
// a list.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	var aux struct {
		plain
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = Config(aux.plain)
	c.EOSTokenIDs = nil
	if len(aux.EOS) > 0 && string(aux.EOS) != "null" {
		var one int64
		if err := json.Unmarshal(aux.EOS, &one); err == nil {
			c.EOSTokenIDs = []int64{one}
		} else if err := json.Unmarshal(aux.EOS, &c.EOSTokenIDs); err != nil {
			return fmt.Errorf("eos_token_id: %w", err)
		}
	}
	return nil
}

// MarshalJSON writes HF config.json fields, with architectures and
// eos_token_id (a number when there is one id).
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	var eos any = c.EOSTokenIDs
	if len(c.EOSTokenIDs) == 1 {
		eos = c.EOSTokenIDs[0]
	}
	return json.Marshal(struct {
		Architectures []string `json:"architectures"`
		plain
		EOS any `json:"eos_token_id,omitempty"`
	}{[]string{"Qwen2ForCausalLM"}, plain(c), eos})
}

// ReadConfig parses a config.json stream and validates it.
func ReadConfig(r io.Reader) (Config, error) {
	var c Config
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads path, a config.json or a directory holding one.
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("qwen2 config: %w", err)
	}
	defer f.Close()
	c, err := ReadConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("qwen2 config %s: %w", path, err)
	}
	return c, nil
}

// TinyConfig is a small Qwen2 for tests: the shape of testdata's tiny-qwen2
// (vocab 1024, hidden 64, 2 layers, 4 heads, 2 KV heads, untied).
func TinyConfig() Config {
	return Config{
		ModelType: "qwen2", HiddenSize: 64, IntermediateSize: 176, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, VocabSize: 1024, RMSNormEps: 1e-6,
		RopeTheta: 1e6, MaxPositionEmbeddings: 32768, TorchDType: "float32",
		BOSTokenID: 151643, EOSTokenIDs: []int64{151643}, InitializerRange: 0.02, HiddenAct: "silu",
	}
}

// Bench100MConfig is the ~100M-parameter benchmark shape of issue 4: hidden
// 512, 8 layers, 8 heads, 2 KV heads, intermediate 1408, the full Qwen2.5
// vocabulary (151936), tied embeddings (78M of the parameters).
func Bench100MConfig() Config {
	c := TinyConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 512, 1408, 8
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 8, 2, 151936
	c.TieWordEmbeddings = true
	return c
}

// TrainBenchConfig is the train-step benchmark shape of issue 5: hidden 256,
// 4 layers, 4 heads, 2 KV heads, intermediate 688, vocab 151936, tied.
func TrainBenchConfig() Config {
	c := TinyConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 256, 688, 4
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 4, 2, 151936
	c.TieWordEmbeddings = true
	return c
}
