package testenv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// lossChain is the iptables chain (mangle table, in the edge namespace) that
// drops packets when the kernel has no netem.
const lossChain = "EDGEADM-TESTENV-LOSS"

// Degrade makes the host's uplink worse: delay and loss in both directions.
// With netem it is Link.Degrade. Without netem (this project's kernel has no
// sch_netem) loss alone still works: every packet in or out of the host's eth0
// (its own and its pods') is dropped with probability lossPercent/100 by
// iptables' statistic match inside the edge namespace. Any delay then fails
// with ErrNoNetem: there is nothing else in the kernel that delays packets.
func (h *EdgeHost) Degrade(ctx context.Context, delay time.Duration, lossPercent float64) error {
	if lossPercent < 0 || lossPercent > 100 {
		return fmt.Errorf("degrade link of %s: loss %g%% is not between 0 and 100", h.Name, lossPercent)
	}
	err := h.link.Degrade(ctx, delay, lossPercent)
	if err == nil || !errors.Is(err, ErrNoNetem) {
		return err
	}
	if delay > 0 {
		return fmt.Errorf("degrade link of %s by %s delay: latency needs netem, and no fallback can delay packets: %w", h.Name, delay, err)
	}
	if err := h.healLoss(ctx); err != nil {
		return err
	}
	p := strconv.FormatFloat(lossPercent/100, 'f', 4, 64)
	steps := [][]string{
		{"-N", lossChain},
		// A rule without a target only counts: the packets the chain saw.
		{"-A", lossChain},
		{"-A", lossChain, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
		{"-I", "PREROUTING", "-i", "eth0", "-j", lossChain},
		{"-I", "POSTROUTING", "-o", "eth0", "-j", lossChain},
	}
	for _, s := range steps {
		if _, err := h.iptables(ctx, append([]string{"-t", "mangle"}, s...)...); err != nil {
			return errors.Join(fmt.Errorf("degrade link of %s with iptables: %w", h.Name, err), h.healLoss(ctx))
		}
	}
	return nil
}

// Heal removes whatever Degrade added.
func (h *EdgeHost) Heal(ctx context.Context) error {
	return errors.Join(h.link.Heal(ctx), h.healLoss(ctx))
}

func (h *EdgeHost) healLoss(ctx context.Context) error {
	if _, err := h.iptables(ctx, "-t", "mangle", "-L", lossChain, "-n"); err != nil {
		return nil // no chain: nothing to remove
	}
	var errs []error
	for _, s := range [][]string{
		{"-D", "PREROUTING", "-i", "eth0", "-j", lossChain},
		{"-D", "POSTROUTING", "-o", "eth0", "-j", lossChain},
		{"-F", lossChain},
		{"-X", lossChain},
	} {
		if _, err := h.iptables(ctx, append([]string{"-t", "mangle"}, s...)...); err != nil &&
			!strings.Contains(err.Error(), "does a matching rule exist") && !strings.Contains(err.Error(), "Bad rule") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LossCounters reads the iptables fallback's counters: packets that crossed
// eth0 while it was degraded, and how many of them were dropped.
func (h *EdgeHost) LossCounters(ctx context.Context) (seen, dropped int, err error) {
	out, err := h.iptables(ctx, "-t", "mangle", "-L", lossChain, "-n", "-v", "-x")
	if err != nil {
		return 0, 0, err
	}
	var counts []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				counts = append(counts, n)
			}
		}
	}
	if len(counts) != 2 {
		return 0, 0, fmt.Errorf("unexpected %s chain:\n%s", lossChain, out)
	}
	return counts[0], counts[1], nil
}

// iptables runs the machine's own iptables in the edge namespace. It works
// whether or not the machine runs: the binary comes from its root, the rules
// go to the namespace's kernel tables, which the machine and its kubelet share.
func (h *EdgeHost) iptables(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"--net=" + filepath.Join(netnsDir, h.link.NS), "--", "chroot", h.Root, "iptables", "-w"}, args...)
	return output(ctx, "nsenter", argv...)
}
