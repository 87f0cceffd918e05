package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Pool hands out one Host per name for the whole run: the first Get dials,
// concurrent Gets of the same name wait for that dial, and later Gets reuse
// the connection. A failed dial is remembered (the run does not hammer an
// unreachable host), except a cancelled one.
type Pool struct {
	dial   func(ctx context.Context, name string) (Host, error)
	dials  atomic.Int64
	hosts  shared[Host]
	closed atomic.Bool
}

// NewPool returns a Pool that opens hosts with dial.
func NewPool(dial func(ctx context.Context, name string) (Host, error)) *Pool {
	return &Pool{dial: dial}
}

// Get returns the connected host called name.
func (p *Pool) Get(ctx context.Context, name string) (Host, error) {
	if p.closed.Load() {
		return nil, errors.New("transport pool is closed")
	}
	return p.hosts.do(ctx, name, func() (Host, error) {
		p.dials.Add(1)
		return p.dial(ctx, name)
	}, func(err error) bool { return !errors.Is(err, context.Canceled) })
}

// Dials is the number of dials the pool made (one per host when all went well).
func (p *Pool) Dials() int64 { return p.dials.Load() }

// Close closes every host the pool opened.
func (p *Pool) Close() error {
	p.closed.Store(true)
	var errs []error
	for _, h := range p.hosts.drain() {
		if h != nil {
			if err := h.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// shared computes a value at most once per key: concurrent callers wait
// for the one call, later callers get its result.
type shared[V any] struct {
	mu sync.Mutex
	m  map[string]*sharedCall[V]
}

type sharedCall[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// do returns the value for key, calling fn if there is none. A failure is
// kept only when keep(err) says so; otherwise the next caller retries.
func (s *shared[V]) do(ctx context.Context, key string, fn func() (V, error), keep func(error) bool) (V, error) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*sharedCall[V]{}
	}
	c, ok := s.m[key]
	if !ok {
		c = &sharedCall[V]{done: make(chan struct{})}
		s.m[key] = c
		s.mu.Unlock()
		c.v, c.err = fn()
		if c.err != nil && !keep(c.err) {
			s.mu.Lock()
			if s.m[key] == c {
				delete(s.m, key)
			}
			s.mu.Unlock()
		}
		close(c.done)
	} else {
		s.mu.Unlock()
	}
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// drain forgets every value and returns the successful ones, waiting for
// calls in flight.
func (s *shared[V]) drain() []V {
	s.mu.Lock()
	m := s.m
	s.m = nil
	s.mu.Unlock()
	var out []V
	for _, c := range m {
		<-c.done
		if c.err == nil {
			out = append(out, c.v)
		}
	}
	return out
}
