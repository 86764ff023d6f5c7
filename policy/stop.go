package policy

import "strings"

// stopMatcher finds stop strings in text that arrives in pieces (the streamed
// decode of one sequence), including stop strings split across pieces. It
// keeps only the last len(longest stop)-1 bytes between calls.
type stopMatcher struct {
	stops []string
	keep  int // bytes of tail to keep: longest stop - 1
	tail  string
}

func newStopMatcher(stops []string) *stopMatcher {
	m := &stopMatcher{stops: stops}
	for _, s := range stops {
		m.keep = max(m.keep, len(s)-1)
	}
	return m
}

// feed appends a piece of text and reports the stop string that now occurs,
// the earliest-ending one if several do, or "" if none. A stop string lying
// wholly in earlier pieces was reported by an earlier call: the tail kept is
// too short to hold one.
func (m *stopMatcher) feed(piece string) string {
	if len(m.stops) == 0 || piece == "" {
		return ""
	}
	buf := m.tail + piece
	found, end := "", len(buf)+1
	for _, s := range m.stops {
		if i := strings.Index(buf, s); i >= 0 && i+len(s) < end {
			found, end = s, i+len(s)
		}
	}
	if len(buf) > m.keep {
		buf = buf[len(buf)-m.keep:]
	}
	m.tail = strings.Clone(buf)
	return found
}
