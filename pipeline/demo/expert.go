// Package demo is the embedded default: a synthetic knowledge world in which
// a tiny Qwen2-shaped policy learns, on a CPU in minutes, to search and
// answer; IG-GRPO is compared with plain GRPO on it.
package demo

import (
	"context"
	"fmt"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/tokenize"
)

// observer answers queries as the rollout's environment does: the top-k
// passages, formatted as the protocol's observation block.
type observer struct {
	retr  index.Retriever
	proto protocol.Protocol
	topk  int
}

func (o observer) observe(ctx context.Context, queries []string) ([]string, [][]string, error) {
	res, err := o.retr.SearchBatch(ctx, queries, o.topk)
	if err != nil {
		return nil, nil, err
	}
	obs := make([]string, len(queries))
	ids := make([][]string, len(queries))
	for i, hits := range res {
		docs := make([]protocol.Doc, len(hits))
		for j, h := range hits {
			docs[j] = protocol.Doc{ID: h.Doc.ID, Contents: h.Doc.Contents()}
			ids[i] = append(ids[i], h.Doc.ID)
		}
		obs[i] = o.proto.Observation(docs)
	}
	return obs, ids, nil
}

// segment is a piece of a trajectory: text the model writes, or an
// observation the environment inserts.
type segment struct {
	text      string
	generated bool
}

// expertSegments lays an expert trajectory out as the rollout produces one:
// each turn's "<think> … </think>\n<search> Q </search>" is generated, the
// observation for Q is inserted, and the last turn writes the answer.
func expertSegments(ctx context.Context, x world.Expert, obs observer) ([]segment, error) {
	var segs []segment
	for _, t := range x.Turns {
		if t.Query == "" {
			segs = append(segs, segment{text: "<think> " + t.Think + " </think>\n<answer> " + t.Answer + " </answer>", generated: true})
			return segs, nil
		}
		segs = append(segs, segment{text: "<think> " + t.Think + " </think>\n<search> " + t.Query + " </search>", generated: true})
		o, _, err := obs.observe(ctx, []string{t.Query})
		if err != nil {
			return nil, fmt.Errorf("expert %s: query %q: %w", x.ID, t.Query, err)
		}
		segs = append(segs, segment{text: o[0]})
	}
	return nil, fmt.Errorf("expert %s: no answer turn", x.ID)
}

// sequence tokenizes prompt + segments, segment by segment as generation
// would, marking the generated tokens as trained.
func sequence(tok *tokenize.Tokenizer, prompt string, segs []segment) train.Sequence {
	var s train.Sequence
	add := func(text string, trained bool) {
		for _, id := range tok.Encode(text) {
			s.IDs = append(s.IDs, id)
			s.Train = append(s.Train, trained)
		}
	}
	add(prompt, false)
	for _, seg := range segs {
		add(seg.text, seg.generated)
	}
	return s
}
