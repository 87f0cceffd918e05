package schedule

import (
	"testing"
	"time"
)

func TestNextCron(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)
	for sched, want := range map[string]string{
		"44 22 * * *":     "2026-11-22T22:44:00Z",
		"5 * * * *":       "2026-11-22T11:05:00Z",
		"7-59/15 * * * *": "2026-11-22T10:37:00Z",
		"0 1-23/6 * * *":  "2026-11-22T13:00:00Z",
		"10 3 */3 * *":    "2026-11-25T03:10:00Z",
	} {
		got, ok := NextCron(sched, now)
		if !ok || got.Format(time.RFC3339) != want {
			t.Errorf("%s: %s, want %s", sched, got.Format(time.RFC3339), want)
		}
	}
}
