// Package policy runs a Qwen2 policy on ONNX Runtime for the IG-Search
// pipeline: batched generation with a KV cache and seeded sampling,
// continuation of sequences with tokens that were not sampled (retrieved
// documents), and per-token log-prob scoring.
//
// Callers see token ids, strings and float32 log-probs, never runtime
// tensors, so that a device-resident path (IoBinding to GPU memory, ONNX
// Runtime's Sampling op) can replace the host-memory one behind the same API.
//
// A multi-turn search rollout keeps its sequences in one Batch, so that each
// turn prefills only the new tokens:
//
//	b, err := pol.NewBatch(reqs) // one row per trajectory, each with its seed
//	defer b.Close()
//	sp := policy.SamplingParams{MaxNewTokens: 512, Temperature: 1,
//		Stop: []string{"</search>", "</answer>"}}
//	active := []int{0, 1, 2, 3}
//	for turn := 0; len(active) > 0; turn++ {
//		comps, err := b.Generate(ctx, active, sp) // old log-probs in comps[i].LogProbs
//		var next []int
//		var obs [][]int32
//		for i, r := range active {
//			if comps[i].Stop == "</search>" {
//				next = append(next, r)
//				obs = append(obs, tok.Encode(observation(comps[i].Text)))
//			} else {
//				b.Drop(r) // answered, EOS or out of tokens: free its cache
//			}
//		}
//		b.Append(next, obs) // prefilled by the next Generate, in one run
//		active = next
//	}
//
// The full token sequence of row r is b.Tokens(r); the generated tokens of
// each turn are its Completion's Tokens, the rest are the prompt and the
// appended observations.
package policy
