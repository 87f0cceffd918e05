package state

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Journal is the run journal: an append-only text file, one line per step,
//
//	TIME RUN HOST PHASE STATUS KEY DESCRIPTION
//
// where STATUS is intent, done or failed. Before k4t performs a change whose
// effect a later plan could not see (a restart after a config upload), it
// writes an intent; after it succeeds, done. An intent with no done after it
// is pending: the next run re-plans it, so a run killed at any point
// converges. Lines are fsynced.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	run  string
	path string
}

// OpenJournal opens (appending) the journal at path for run id.
func OpenJournal(path, run string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{f: f, run: run, path: path}, nil
}

// Status of a journal entry.
const (
	Intent = "intent"
	Done   = "done"
	Failed = "failed"
)

// Record appends one line and syncs it to disk.
func (j *Journal) Record(host, phase, status, key, desc string) error {
	if j == nil {
		return nil
	}
	line := fmt.Sprintf("%s %s %s %s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), j.run,
		field(host), field(phase), status, field(key), strings.ReplaceAll(desc, "\n", " "))
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.WriteString(line); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return j.f.Sync()
}

func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	return j.f.Close()
}

func field(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

// Pending is an intent that never reached done.
type Pending struct {
	Host, Phase, Key, Desc string
}

// PendingIntents reads the journal at path and returns, per host and phase,
// the intents whose last status is not done, in file order.
func PendingIntents(path string) ([]Pending, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type k struct{ host, phase, key string }
	last := map[k]string{}
	var order []k
	desc := map[k]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 7)
		if len(parts) < 6 {
			continue // a torn last line from a kill: ignore
		}
		key := k{parts[2], parts[3], parts[5]}
		if _, seen := last[key]; !seen {
			order = append(order, key)
		}
		last[key] = parts[4]
		if parts[4] == Intent && len(parts) == 7 {
			desc[key] = parts[6]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []Pending
	for _, key := range order {
		if last[key] != Done {
			out = append(out, Pending{Host: key.host, Phase: key.phase, Key: key.key, Desc: desc[key]})
		}
	}
	return out, nil
}
