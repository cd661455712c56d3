package ortdev

import "sync"

// life is the lifetime of one ORT object owned by a Go wrapper.
//
// ORT objects depend on each other without reference counting: a tensor made
// by an allocator frees through that allocator, an allocator wraps its
// session's memory, a session uses its env, an IoBinding keeps bound tensors
// in use. A wrapper therefore holds a reference (use) on every object it
// depends on, and Close only marks an object closed: the Release* call runs
// once the last dependant has let go. Close is idempotent, and using a closed
// object returns ErrClosed instead of touching freed memory.
type life struct {
	mu      sync.Mutex
	refs    int
	closed  bool
	done    bool
	release func()
}

// use takes a reference, failing when the object is closed.
func (l *life) use() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.refs++
	return nil
}

// unuse drops a reference taken by use, releasing a closed object once the
// last reference is gone.
func (l *life) unuse() {
	l.mu.Lock()
	l.refs--
	run := l.finishLocked()
	l.mu.Unlock()
	if run != nil {
		run()
	}
}

// close marks the object closed and releases it unless something still uses it.
func (l *life) close() {
	l.mu.Lock()
	l.closed = true
	run := l.finishLocked()
	l.mu.Unlock()
	if run != nil {
		run()
	}
}

// alive reports whether the object can still be used.
func (l *life) alive() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

func (l *life) finishLocked() func() {
	if !l.closed || l.refs > 0 || l.done {
		return nil
	}
	l.done = true
	return l.release
}
