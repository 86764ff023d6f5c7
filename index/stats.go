package index

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Stats describes an open index.
type Stats struct {
	Docs        int
	Terms       int
	Postings    uint64
	Analyzer    string
	K1, B       float64 // the parameters searches use
	AvgDL       float64
	LuceneNorms bool
	Files       []string         // component files, in format order
	FileBytes   map[string]int64 // size on disk of each file
}

// Stats returns the index's counts and the on-disk size of each component.
func (ix *Index) Stats() Stats {
	st := Stats{
		Docs: int(ix.meta.numDocs), Terms: int(ix.meta.numTerms), Postings: ix.meta.numPostings,
		Analyzer: ix.meta.analyzer, K1: ix.p.k1, B: ix.p.b, AvgDL: ix.p.avgdl,
		LuceneNorms: ix.meta.flags&flagLuceneNorms != 0, FileBytes: map[string]int64{},
	}
	for _, c := range components {
		st.Files = append(st.Files, c.file)
		if fi, err := os.Stat(filepath.Join(ix.dir, c.file)); err == nil {
			st.FileBytes[c.file] = fi.Size()
		}
	}
	return st
}

// CompressingWriter wraps w in a gzip or zstd compressor when name ends in
// ".gz" or ".zst", and returns w itself otherwise. The returned close
// function flushes the compressor; it does not close w.
func CompressingWriter(w io.Writer, name string) (io.Writer, func() error, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		gz := gzip.NewWriter(w)
		return gz, gz.Close, nil
	case strings.HasSuffix(name, ".zst"):
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	}
	return w, func() error { return nil }, nil
}
