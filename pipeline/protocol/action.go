package protocol

import (
	"strings"

	"github.com/igsearch/igsearch/pipeline/pystr"
)

// ActionKind is what a generated turn asks the environment to do.
type ActionKind int

// The action kinds of a turn.
const (
	// ActionInvalid is a turn with neither a complete search nor a complete
	// answer; the environment replies with CorrectionMessage.
	ActionInvalid ActionKind = iota
	// ActionSearch asks for a retrieval with the query.
	ActionSearch
	// ActionAnswer ends the trajectory.
	ActionAnswer
)

// String names the action kind.
func (k ActionKind) String() string {
	switch k {
	case ActionSearch:
		return "search"
	case ActionAnswer:
		return "answer"
	}
	return "invalid"
}

// Action is the parsed action of one generated turn.
type Action struct {
	Kind ActionKind
	// Content is the trimmed text inside the tags: the query or the answer.
	Content string
}

// CutAtStop is Search-R1's _postprocess_responses for one turn: the text up
// to and including the first "</search>" if there is one, else up to and
// including the first "</answer>", else the turn unchanged.
func CutAtStop(turn string) string {
	if i := strings.Index(turn, SearchClose); i >= 0 {
		return turn[:i+len(SearchClose)]
	}
	if i := strings.Index(turn, AnswerClose); i >= 0 {
		return turn[:i+len(AnswerClose)]
	}
	return turn
}

// ParseAction is Search-R1's postprocess_predictions for one turn: the
// leftmost match of <(search|answer)>(.*?)</\1>, its content trimmed. A turn
// without such a match is ActionInvalid.
func ParseAction(turn string) Action {
	for i := 0; i < len(turn); i++ {
		if turn[i] != '<' {
			continue
		}
		for _, t := range [...]struct {
			open, close string
			kind        ActionKind
		}{{SearchOpen, SearchClose, ActionSearch}, {AnswerOpen, AnswerClose, ActionAnswer}} {
			if !strings.HasPrefix(turn[i:], t.open) {
				continue
			}
			rest := turn[i+len(t.open):]
			if j := strings.Index(rest, t.close); j >= 0 {
				return Action{Kind: t.kind, Content: pystr.Strip(rest[:j])} // Python's .strip()
			}
		}
	}
	return Action{Kind: ActionInvalid}
}
