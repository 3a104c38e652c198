package train

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressInterval is the minimum time between two updates of the progress line.
var ProgressInterval = 250 * time.Millisecond

// progress writes a single, self-overwriting ("\r") status line while an epoch trains, and the
// per-epoch summary lines.
type progress struct {
	out     io.Writer
	enabled bool
	epochs  int

	epoch, steps int       // current epoch (1-based) and number of steps in it.
	start        time.Time // start of the current epoch.
	last         time.Time // last update of the line.
	width        int       // length of the last line written, to blank it.
}

func newProgress(out io.Writer, enabled bool, epochs int) *progress {
	if out == nil {
		out = io.Discard
	}
	return &progress{out: out, enabled: enabled, epochs: epochs}
}

// startEpoch starts the line of epoch (1-based) with the given number of steps.
func (p *progress) startEpoch(epoch, steps int) {
	p.epoch, p.steps = epoch, steps
	p.start = time.Now()
	p.last = time.Time{}
}

// step updates the line after step (1-based) of the epoch, at most every ProgressInterval and
// always on the last step.
func (p *progress) step(step, images int, loss float64) {
	if !p.enabled {
		return
	}
	now := time.Now()
	if step < p.steps && now.Sub(p.last) < ProgressInterval {
		return
	}
	p.last = now
	line := fmt.Sprintf("epoch %d/%d step %d/%d loss %.4f %s img/s",
		p.epoch, p.epochs, step, p.steps, loss, formatRate(images, now.Sub(p.start)))
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	fmt.Fprintf(p.out, "\r%s%s", line, pad)
}

// status replaces the progress line with a short note (e.g. "evaluating").
func (p *progress) status(msg string) {
	if !p.enabled {
		return
	}
	p.clear()
	fmt.Fprintf(p.out, "%s", msg)
	p.width = len(msg)
}

// clear blanks the progress line, if one is shown.
func (p *progress) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.out, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// summary clears the progress line and prints the summary line of an epoch.
func (p *progress) summary(r EpochResult, epochs int) {
	p.clear()
	fmt.Fprintf(p.out, "epoch %d/%d train_loss %.4f train_err %.2f%% valid_loss %.4f valid_err %.2f%% top5 %.2f%% lr %.4g %.1fs %s img/s\n",
		r.Epoch, epochs, r.TrainLoss, r.TrainError, r.ValidLoss, r.ValidError, r.ValidTop5Error, r.LR,
		r.Seconds, formatFloatRate(r.ImagesPerSecond))
}

// formatRate formats images per elapsed time.
func formatRate(images int, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "-"
	}
	return formatFloatRate(float64(images) / elapsed.Seconds())
}

func formatFloatRate(rate float64) string {
	if rate >= 100 {
		return fmt.Sprintf("%.0f", rate)
	}
	return fmt.Sprintf("%.1f", rate)
}
