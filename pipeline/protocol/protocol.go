// Package protocol holds the text side of the two search-agent protocols,
// Search-R1 ("search-r1") and AutoRefine ("autorefine"): their prompts, tags,
// observation formatting, the action parsing of a generated turn, the
// correction message for an invalid action, and the parsing of a whole
// response into search steps.
//
// Sources: Search-R1's scripts/data_process/qa_search_train_merge.py (prompt)
// and search_r1/llm_agent/generation.py (observations, actions, correction);
// AutoRefine's preprocess/data_process/utils.py (prompt) and its
// generation.py (the <documents> observation).
package protocol

import (
	"fmt"
	"strings"
)

// Protocol names and tags of one agent protocol. The zero value is not
// useful; get one from Lookup, SearchR1 or AutoRefine.
type Protocol struct {
	// Name is the --protocol value: "search-r1" or "autorefine".
	Name string
	// ObsOpen and ObsClose wrap an observation: <information> for
	// Search-R1, <documents> for AutoRefine.
	ObsOpen, ObsClose string
	// Refine reports whether the model writes a <refine>…</refine> block
	// after each observation (AutoRefine).
	Refine bool
	// promptHead is the prompt text before the question.
	promptHead string
}

// Tags shared by both protocols.
const (
	ThinkOpen    = "<think>"
	ThinkClose   = "</think>"
	SearchOpen   = "<search>"
	SearchClose  = "</search>"
	AnswerOpen   = "<answer>"
	AnswerClose  = "</answer>"
	RefineOpen   = "<refine>"
	RefineClose  = "</refine>"
	infoOpen     = "<information>"
	infoClose    = "</information>"
	docsOpen     = "<documents>"
	docsClose    = "</documents>"
	nameSearchR1 = "search-r1"
	nameAutoRef  = "autorefine"
)

// CorrectionMessage is the observation Search-R1 (and AutoRefine) append
// after a turn that holds neither a complete search nor a complete answer
// (generation.py, execute_predictions). It contains the literal tags
// "<search> and </search>" and "<answer> and </answer>"; Parse skips it.
const CorrectionMessage = "\nMy previous action is invalid. " +
	"If I want to search, I should put the query between <search> and </search>. " +
	"If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n"

// searchR1Head is the "base" template of Search-R1's
// qa_search_train_merge.py (make_prefix), up to "Question: ".
const searchR1Head = "Answer the given question. " +
	"You must conduct reasoning inside <think> and </think> first every time you get new information. " +
	"After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. " +
	"You can search as many times as your want. " +
	"If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: "

// autoRefineHead is the "autorefine" template of AutoRefine's
// preprocess/data_process/utils.py (make_prefix), up to "Question: ".
const autoRefineHead = "You are a helpful assistant excel at answering questions with multi-turn search engine calling. " +
	"To answer questions, you must first reason through the available information using <think> and </think>. " +
	"If you identify missing knowledge, you may issue a search request using <search> query </search> at any time. The retrieval system will provide you with the three most relevant documents enclosed in <documents> and </documents>. " +
	"After each search, you need to summarize and refine the existing documents in <refine> and </refine>. " +
	"You may send multiple search requests if needed. " +
	"Once you have sufficient information, provide a concise final answer using <answer> and </answer>. For example, <answer> Donald Trump </answer>. Question: "

// SearchR1 returns the Search-R1 protocol.
func SearchR1() Protocol {
	return Protocol{Name: nameSearchR1, ObsOpen: infoOpen, ObsClose: infoClose, promptHead: searchR1Head}
}

// AutoRefine returns the AutoRefine protocol.
func AutoRefine() Protocol {
	return Protocol{Name: nameAutoRef, ObsOpen: docsOpen, ObsClose: docsClose, Refine: true, promptHead: autoRefineHead}
}

// Lookup returns the protocol with the given --protocol name.
func Lookup(name string) (Protocol, error) {
	switch name {
	case nameSearchR1:
		return SearchR1(), nil
	case nameAutoRef:
		return AutoRefine(), nil
	}
	return Protocol{}, fmt.Errorf("protocol: unknown protocol %q (want %s or %s)", name, nameSearchR1, nameAutoRef)
}

// NormalizeQuestion is the question clean-up of the sources' data
// processing: trim white space, and append "?" unless the question already
// ends with one. An empty question stays empty.
func NormalizeQuestion(q string) string {
	q = strings.TrimSpace(q)
	if q != "" && !strings.HasSuffix(q, "?") {
		q += "?"
	}
	return q
}

// Prompt is the user-turn text for a question: the protocol's template,
// verbatim, with NormalizeQuestion(question) and a final "\n". The caller
// wraps it in the Qwen2.5 chat format, or uses it plain (--no-chat).
func (p Protocol) Prompt(question string) string {
	return p.promptHead + NormalizeQuestion(question) + "\n"
}

// StopSequences are the strings at which generation of a turn stops.
func (p Protocol) StopSequences() []string { return []string{SearchClose, AnswerClose} }
