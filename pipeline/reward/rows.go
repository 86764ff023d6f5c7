package reward

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
)

// RowStats summarises a ScoreRows run.
type RowStats struct {
	Rows       int     // rows scored
	NoAnswer   int     // rows whose response has no closed <answer>…</answer>
	SumReward  float64 // sum of the rewards
	MeanReward float64 // SumReward / Rows (0 without rows)
}

// ScoreRows is the `igsearch reward` stage: it reads JSONL rows
// {"id", "response", "golden_answers", ...} from r and writes each row to w
// with "answer" (the content of the response's last closed answer tag,
// stripped, or null) and "reward" (the outcome reward under cfg) added; the
// row's other fields are kept as they were, in their order, and an existing
// "answer" or "reward" is replaced. The reward is Outcome(cfg, p, …), the
// function training uses. golden_answers may be a list or a single string
// or number; rows without it may give Search-R1's
// reward_model.ground_truth.target instead. A row that cannot be scored
// (bad JSON, no "response", no gold answers) is an error naming its line:
// nothing is skipped silently. name prefixes errors (usually the path).
func ScoreRows(r io.Reader, w io.Writer, name string, cfg Config, p protocol.Protocol) (RowStats, error) {
	var st RowStats
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return st, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		out, answered, rew, perr := scoreRow(b, cfg, p)
		if perr != nil {
			return st, fmt.Errorf("%s: line %d: %w", name, line, perr)
		}
		if _, err := w.Write(out); err != nil {
			return st, fmt.Errorf("%s: writing line %d: %w", name, line, err)
		}
		st.Rows++
		st.SumReward += rew
		if !answered {
			st.NoAnswer++
		}
	}
	if st.Rows > 0 {
		st.MeanReward = st.SumReward / float64(st.Rows)
	}
	return st, nil
}

// field is one member of a JSON object, its value kept raw.
type field struct {
	key string
	val json.RawMessage
}

// scoreRow scores one JSONL row and returns it with answer and reward
// added, newline-terminated.
func scoreRow(line []byte, cfg Config, p protocol.Protocol) ([]byte, bool, float64, error) {
	fields, err := objectFields(line)
	if err != nil {
		return nil, false, 0, err
	}
	var response *string
	var golds []string
	var goldsRaw, target json.RawMessage
	for _, f := range fields {
		switch f.key {
		case "response":
			if err := json.Unmarshal(f.val, &response); err != nil {
				return nil, false, 0, fmt.Errorf(`"response" must be a string: %w`, err)
			}
		case "golden_answers":
			goldsRaw = f.val
		case "reward_model":
			var rm struct {
				GroundTruth struct {
					Target json.RawMessage `json:"target"`
				} `json:"ground_truth"`
			}
			if json.Unmarshal(f.val, &rm) == nil {
				target = rm.GroundTruth.Target
			}
		}
	}
	if response == nil {
		return nil, false, 0, errors.New(`row has no "response" string`)
	}
	if goldsRaw == nil && target != nil {
		goldsRaw = target
	}
	if golds, err = qa.ParseGolds(goldsRaw); err != nil {
		return nil, false, 0, fmt.Errorf(`%w (give "golden_answers" or reward_model.ground_truth.target)`, err)
	}
	answer, ok := ExtractAnswer(*response)
	rew := Outcome(cfg, p, *response, golds)
	var b bytes.Buffer
	b.WriteByte('{')
	for _, f := range fields {
		if f.key == "answer" || f.key == "reward" {
			continue
		}
		writeKey(&b, f.key)
		b.Write(f.val)
		b.WriteByte(',')
	}
	writeKey(&b, "answer")
	if ok {
		writeString(&b, answer)
	} else {
		b.WriteString("null")
	}
	b.WriteByte(',')
	writeKey(&b, "reward")
	rb, err := json.Marshal(rew)
	if err != nil {
		return nil, false, 0, fmt.Errorf("reward %v: %w", rew, err)
	}
	b.Write(rb)
	b.WriteString("}\n")
	return b.Bytes(), ok, rew, nil
}

// objectFields splits a JSON object into its members in order, values
// compacted. Anything but one object is an error.
func objectFields(line []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			err = errors.New("the row is not a JSON object")
		}
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad JSON: %w", err)
		}
		key := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("bad JSON: field %q: %w", key, err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, val); err != nil {
			return nil, fmt.Errorf("bad JSON: field %q: %w", key, err)
		}
		fields = append(fields, field{key, c.Bytes()})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("bad JSON: trailing data after the row's object")
	}
	return fields, nil
}

func writeKey(b *bytes.Buffer, k string) {
	writeString(b, k)
	b.WriteByte(':')
}

// writeString writes s as a JSON string without HTML escaping.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}
