package installpkg

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// progressInterval throttles the updates on a terminal.
const progressInterval = 500 * time.Millisecond

// progress counts the bytes written through it. On a terminal it rewrites one line with
// "done / total" at most every progressInterval; elsewhere (a log, a pipe) it stays
// quiet until done or fail prints one summary line.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	total int64
	n     int64
	start time.Time
	last  time.Time
	now   func() time.Time
	shown bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, now: time.Now}
	p.tty = isTerminal(w)
	p.start = p.now()
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.w == nil || !p.tty {
		return len(b), nil
	}
	if t := p.now(); t.Sub(p.last) >= progressInterval {
		p.last = t
		p.shown = true
		fmt.Fprintf(p.w, "\r\033[K%s: %s", p.label, p.status(t))
	}
	return len(b), nil
}

func (p *progress) status(t time.Time) string {
	s := humanBytes(p.n)
	if p.total >= 0 {
		s += " / " + humanBytes(p.total)
		if p.total > 0 {
			s += fmt.Sprintf(" (%d%%)", p.n*100/p.total)
		}
	}
	if d := t.Sub(p.start); d > 0 {
		s += fmt.Sprintf(", %s/s", humanBytes(int64(float64(p.n)/d.Seconds())))
	}
	return s
}

func (p *progress) done() { p.end("done") }

func (p *progress) fail() { p.end("failed") }

func (p *progress) end(how string) {
	if p.w == nil {
		return
	}
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	d := p.now().Sub(p.start)
	rate := ""
	if d > 0 {
		rate = fmt.Sprintf(" (%s/s)", humanBytes(int64(float64(p.n)/d.Seconds())))
	}
	fmt.Fprintf(p.w, "%s: %s, %s in %s%s\n", p.label, how, humanBytes(p.n), d.Round(time.Millisecond), rate)
}

// humanBytes prints n in binary units: 512 B, 1.5 KiB, 180.3 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
