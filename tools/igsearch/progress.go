package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line progress bar on stderr when stderr is a terminal,
// and stays silent in pipes and logs. It is safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	label string
	unit  string // what count counts: "docs", "tokens", ...
	total int64  // the total of done, 0 when unknown (no percentage or ETA)
	start time.Time
	last  time.Time
	tty   bool
}

func newProgress(label, unit string, total int64) *progress {
	return &progress{label: label, unit: unit, total: total, start: time.Now(), tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

// update reports done (in the units of total, e.g. bytes read) and count
// (items finished). It redraws at most 10 times a second.
func (p *progress) update(done, count int64) {
	if p == nil || !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.draw(now, done, count)
}

func (p *progress) draw(now time.Time, done, count int64) {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(count) / el
	}
	line := fmt.Sprintf("%s: %d %s, %.0f %s/s", p.label, count, p.unit, rate, p.unit)
	if p.total > 0 && done > 0 {
		frac := float64(done) / float64(p.total)
		eta := time.Duration(el/frac*(1-frac)) * time.Second
		line = fmt.Sprintf("%s %5.1f%% ETA %s", line, 100*frac, eta.Round(time.Second))
	}
	fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
}

// finish clears the bar's line.
func (p *progress) finish() {
	if p == nil || !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(os.Stderr, "\r\033[K")
}
