package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
)

// DefaultConcurrency is how many hosts are worked on at once when
// --concurrency is not set.
const DefaultConcurrency = 20

// AllHosts is every host of the inventory, in inventory order.
func AllHosts(r *Run) []*v1alpha1.Host {
	out := make([]*v1alpha1.Host, len(r.Cluster.Spec.Hosts))
	for i := range r.Cluster.Spec.Hosts {
		out[i] = &r.Cluster.Spec.Hosts[i]
	}
	return out
}

// ForEachHost runs fn on every item with at most r's concurrency
// (--concurrency) at once and joins every failure, not just the first. The
// fan-out every phase and command uses.
func ForEachHost[T any](ctx context.Context, r *Run, items []T, fn func(context.Context, T) error) error {
	n := r.Options.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	sem := make(chan struct{}, n)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return joinHostErrors(errs)
}

// joinHostErrors joins errors one per line, dropping duplicates of a
// cancelled context.
func joinHostErrors(errs []error) error {
	var out []error
	cancelled := false
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) {
			if cancelled {
				continue
			}
			cancelled = true
		}
		out = append(out, err)
	}
	return errors.Join(out...)
}

// ErrTimeout is what Poll returns, wrapped, when the condition did not hold
// in time.
var ErrTimeout = errors.New("timed out")

// Poll calls cond every `every` until it reports done, the context ends, or
// timeout passes. On timeout it returns ErrTimeout wrapping cond's last
// error, if any. cond runs at once, then after each interval.
func Poll(ctx context.Context, timeout, every time.Duration, cond func(context.Context) (done bool, err error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := cond(ctx)
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%w after %s (last: %w)", ErrTimeout, timeout, err)
			}
			return fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// OnHosts connects to every host (see ForEachHost for the fan-out) and runs
// fn on it; each failure names its host and phase.
func OnHosts(ctx context.Context, r *Run, phase string, hosts []*v1alpha1.Host, fn func(context.Context, *HostCtx) error) error {
	return ForEachHost(ctx, r, hosts, func(ctx context.Context, h *v1alpha1.Host) error {
		conn, err := r.Connect(ctx, h)
		if err != nil {
			return WrapPhase(phase, h.Name, err)
		}
		return WrapPhase(phase, h.Name, fn(ctx, &HostCtx{Host: h, Conn: conn, Run: r}))
	})
}
