// Package index is an offline BM25 retrieval index over a passage corpus,
// with the HTTP server that serves it in Search-R1's /retrieve API.
//
// The pieces, in the order data flows through them:
//
//   - Corpus: CorpusReader streams JSONL passages (Search-R1's wiki-18
//     {"id","contents"} or {"id","title","text"}; plain, .gz or .zst), and
//     reports a malformed line with its number (LineError).
//   - Analysis: Analyzer turns text into terms ("english": Lucene's
//     EnglishAnalyzer as Anserini uses it; "simple": lowercased runs of
//     letters and digits).
//   - Build: Build and BuildFile write an immutable index directory (six
//     files, laid out in FORMAT.md; shard.json for a shard) under a temporary
//     name beside it and rename it into place when complete, so a reader
//     never sees half an index. Memory stays bounded: segments spill to run
//     files that are merged in one streaming pass. A build refuses to replace
//     a directory holding anything else (DirKind), and removes what killed
//     builds left behind.
//   - Search: Open maps an index; Index.Search gives the top-k passages by
//     BM25 (k1, b stored at build time, overridable in Options) over posting
//     lists whose doc ids are roaring bitmaps; RandomDocs draws the random
//     passages of IG's counterfactuals. OpenSharded searches several shards
//     as one index with global collection statistics.
//   - Serving: Server is an http.Handler for POST /retrieve and GET /health
//     over any Searcher; RemoteRetriever is the client side, for a
//     Search-R1-compatible server elsewhere. Both satisfy Retriever, what
//     the search agent calls.
//
// The package imports nothing of the project but atomicfile: it is a
// standalone retrieval tool as well as the agent's retriever.
package index
