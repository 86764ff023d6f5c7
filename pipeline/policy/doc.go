// Package policy runs a Qwen2 policy on ONNX Runtime for the IG-Search
// pipeline: batched generation with a KV cache and seeded sampling,
// continuation of sequences with tokens that were not sampled (retrieved
// documents), and per-token log-prob scoring.
//
// Callers see token ids, strings and float32 log-probs, never runtime
// tensors, so that a device-resident path (IoBinding to GPU memory, ONNX
// Runtime's Sampling op) can replace the host-memory one behind the same API.
package policy
