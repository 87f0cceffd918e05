// Package events is k4t's one event stream: every start, end, change and
// error of a run becomes an Event. Text output for people, JSON lines for
// machines and the log file are all sinks of the same stream.
package events

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Type of an event.
type Type string

const (
	RunStart   Type = "run_start"
	RunEnd     Type = "run_end"
	PhaseStart Type = "phase_start"
	PhaseEnd   Type = "phase_end"
	HostStart  Type = "host_start"
	HostEnd    Type = "host_end"
	Change     Type = "change"  // a change planned (plan) or applied (apply)
	Message    Type = "message" // a line for people (warnings, results)
	Error      Type = "error"
	Download   Type = "download" // an artifact's download or pull: progress, then done
)

// Event is one thing that happened.
type Event struct {
	Time     time.Time     `json:"time"`
	Type     Type          `json:"type"`
	Run      string        `json:"run,omitempty"`
	Phase    string        `json:"phase,omitempty"`
	Host     string        `json:"host,omitempty"`
	Kind     string        `json:"kind,omitempty"`   // change kind: file, package, unit, command
	Action   string        `json:"action,omitempty"` // planned, applied, skipped
	Message  string        `json:"message,omitempty"`
	Diff     string        `json:"diff,omitempty"`
	Changes  int           `json:"changes,omitempty"`
	Duration time.Duration `json:"-"`
	Error    string        `json:"error,omitempty"`
	Level    string        `json:"level,omitempty"` // for messages: info, warn
	// Uploaded: at run_end, the file bytes sent to hosts (0 on a no-op).
	Uploaded *int64 `json:"bytes_uploaded,omitempty"`
	// UploadedBy: at run_end, the same per host (hosts sent nothing left out).
	UploadedBy map[string]int64 `json:"bytes_uploaded_by_host,omitempty"`
	// Bytes and Total: a download's bytes received so far and its size (0
	// when unknown); Rate in bytes per second.
	Bytes int64   `json:"bytes,omitempty"`
	Total int64   `json:"total,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
}

// MarshalJSON writes durations in seconds, which machines read easily.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	var d *float64
	if e.Duration > 0 {
		s := e.Duration.Seconds()
		d = &s
	}
	return json.Marshal(struct {
		plain
		DurationS *float64 `json:"duration_s,omitempty"`
	}{plain(e), d})
}

// Sink receives events. Implementations are called under the emitter's lock.
type Sink interface{ Emit(Event) }

// Emitter fans events out to sinks.
type Emitter struct {
	mu    sync.Mutex
	run   string
	sinks []Sink
}

func NewEmitter(run string, sinks ...Sink) *Emitter { return &Emitter{run: run, sinks: sinks} }

func (e *Emitter) Add(s Sink) { e.mu.Lock(); e.sinks = append(e.sinks, s); e.mu.Unlock() }

// Emit stamps the event with time and run id and sends it to every sink.
func (e *Emitter) Emit(ev Event) {
	if e == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Run = e.run
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sinks {
		s.Emit(ev)
	}
}

// Infof emits a message for people.
func (e *Emitter) Infof(phase, host, format string, a ...any) {
	e.Emit(Event{Type: Message, Level: "info", Phase: phase, Host: host, Message: fmt.Sprintf(format, a...)})
}

// Warnf emits a warning.
func (e *Emitter) Warnf(phase, host, format string, a ...any) {
	e.Emit(Event{Type: Message, Level: "warn", Phase: phase, Host: host, Message: fmt.Sprintf(format, a...)})
}

// JSON writes one event per line.
type JSON struct{ W io.Writer }

func (j JSON) Emit(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	j.W.Write(append(b, '\n'))
}

// Text writes lines for people: a phase header, then "host | message".
type Text struct {
	W        io.Writer
	Verbose  bool
	ShowDiff bool
	// Width of the host column; set it to the longest host name so the
	// column does not shift as hosts appear.
	Width int
}

func (t *Text) prefix(host string) string {
	if len(host) > t.Width {
		t.Width = len(host)
	}
	if host == "" {
		return ""
	}
	return fmt.Sprintf("%-*s | ", t.Width, host)
}

func (t *Text) Emit(ev Event) {
	switch ev.Type {
	case PhaseStart:
		fmt.Fprintf(t.W, "==> %s\n", ev.Message)
	case PhaseEnd:
		if ev.Error != "" {
			fmt.Fprintf(t.W, "<== %s failed after %s\n", ev.Phase, round(ev.Duration))
		} else if t.Verbose || ev.Changes > 0 {
			fmt.Fprintf(t.W, "<== %s: %d change(s) in %s\n", ev.Phase, ev.Changes, round(ev.Duration))
		}
	case HostEnd:
		if t.Verbose {
			fmt.Fprintf(t.W, "%sdone in %s (%d change(s))\n", t.prefix(ev.Host), round(ev.Duration), ev.Changes)
		}
	case Change:
		mark := map[string]string{"planned": "~", "applied": "✓", "skipped": "-"}[ev.Action]
		if mark == "" {
			mark = "*"
		}
		fmt.Fprintf(t.W, "%s%s %s: %s\n", t.prefix(ev.Host), mark, ev.Kind, ev.Message)
		if t.ShowDiff && ev.Diff != "" {
			for _, l := range strings.Split(strings.TrimRight(ev.Diff, "\n"), "\n") {
				fmt.Fprintf(t.W, "%s    %s\n", t.prefix(ev.Host), l)
			}
		}
	case Message:
		lvl := ""
		if ev.Level == "warn" {
			lvl = "WARNING: "
		}
		fmt.Fprintf(t.W, "%s%s%s\n", t.prefix(ev.Host), lvl, ev.Message)
	case Download:
		rate := ""
		if ev.Rate > 0 {
			rate = fmt.Sprintf(", %s/s", byteSize(int64(ev.Rate)))
		}
		if ev.Action == "done" {
			fmt.Fprintf(t.W, "%s✓ download: %s, %s in %s%s\n", t.prefix(ev.Host), ev.Message, byteSize(ev.Bytes), round(ev.Duration), rate)
			return
		}
		of := ""
		if ev.Total > 0 {
			of = fmt.Sprintf(" of %s (%d%%)", byteSize(ev.Total), ev.Bytes*100/ev.Total)
			if ev.Rate > 0 {
				rate += fmt.Sprintf(", %s left", round(time.Duration(float64(ev.Total-ev.Bytes)/ev.Rate*float64(time.Second))))
			}
		}
		fmt.Fprintf(t.W, "%s  download: %s: %s%s%s\n", t.prefix(ev.Host), ev.Message, byteSize(ev.Bytes), of, rate)
	case Error:
		// The command prints the run's error once, at the end.
	case RunEnd:
		if ev.Error != "" {
			fmt.Fprintf(t.W, "k4t: failed after %s: %d change(s) made\n", round(ev.Duration), ev.Changes)
		} else {
			up := ""
			if ev.Uploaded != nil && *ev.Uploaded > 0 {
				up = fmt.Sprintf(", %s uploaded to %d host(s)", byteSize(*ev.Uploaded), len(ev.UploadedBy))
			}
			fmt.Fprintf(t.W, "k4t: %s in %s: %d change(s)%s\n", ev.Message, round(ev.Duration), ev.Changes, up)
		}
	}
}

// byteSize is n in B, kB, MB or GB (decimal), for people.
func byteSize(n int64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// Collect keeps every event in memory (tests, benchmarks).
type Collect struct {
	mu     sync.Mutex
	Events []Event
}

func (c *Collect) Emit(ev Event) { c.mu.Lock(); c.Events = append(c.Events, ev); c.mu.Unlock() }

// Of returns the collected events of one type.
func (c *Collect) Of(t Type) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, e := range c.Events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}
