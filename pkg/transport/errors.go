package transport

import "fmt"

// ConnectError is a failure to reach or log in to a host. Hint says what to do.
type ConnectError struct {
	Host string
	Addr string
	Err  error
	Hint string
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("%s: cannot connect to %s: %v", e.Host, e.Addr, e.Err)
	if e.Hint != "" {
		s += " — " + e.Hint
	}
	return s
}

func (e *ConnectError) Unwrap() error { return e.Err }

// HostKeyError is an unknown or changed host key.
type HostKeyError struct {
	Host        string
	Addr        string
	Fingerprint string
	Changed     bool   // true: a key is recorded and differs (possible MITM)
	KnownHosts  string // the file that holds (or would hold) the key
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("%s: HOST KEY CHANGED for %s (now %s); refusing to connect — if the host was reinstalled, remove its line from %s and re-run with --accept-new-hosts",
			e.Host, e.Addr, e.Fingerprint, e.KnownHosts)
	}
	return fmt.Sprintf("%s: unknown host key for %s (%s) — verify it, then re-run with --accept-new-hosts to record it in %s",
		e.Host, e.Addr, e.Fingerprint, e.KnownHosts)
}
