package trainer

import (
	"math"
	"strings"
	"testing"
)

func TestValidateSettingsListsEveryBadValue(t *testing.T) {
	if err := ValidateSettings(DefaultLossConfig(), DefaultAdamW()); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	loss, opt := DefaultLossConfig(), DefaultAdamW()
	loss.ClipEps = 1.5
	loss.KLBeta = math.Inf(1)
	opt.LR = -1
	opt.Beta2 = math.NaN()
	opt.WeightDecay = -0.1
	err := ValidateSettings(loss, opt)
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{"clip_eps 1.5", "kl_beta +Inf", "lr -1", "beta2 NaN", "weight_decay -0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	opt = DefaultAdamW()
	opt.LR = math.NaN()
	if err := ValidateSettings(DefaultLossConfig(), opt); err == nil || !strings.Contains(err.Error(), "lr NaN") {
		t.Errorf("lr NaN: %v", err)
	}
}
