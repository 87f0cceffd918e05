package schedule

import (
	"strconv"
	"strings"
	"time"
)

// NextCron returns the first minute after now that matches the five cron fields, for the
// forms CronSchedule writes ("*", "N", "A-B/N", "*/N").
func NextCron(schedule string, now time.Time) (time.Time, bool) {
	f := strings.Fields(schedule)
	if len(f) != 5 {
		return time.Time{}, false
	}
	t := now.Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 60*24*62; i++ {
		if cronField(f[0], t.Minute(), 0, 59) && cronField(f[1], t.Hour(), 0, 23) && cronField(f[2], t.Day(), 1, 31) &&
			cronField(f[3], int(t.Month()), 1, 12) && cronField(f[4], int(t.Weekday()), 0, 6) {
			return t, true
		}
		t = t.Add(time.Minute)
	}
	return time.Time{}, false
}

func cronField(field string, v, lo, hi int) bool {
	rng, step := field, 1
	if a, b, ok := strings.Cut(field, "/"); ok {
		rng = a
		n, err := strconv.Atoi(b)
		if err != nil || n <= 0 {
			return false
		}
		step = n
	}
	from, to := lo, hi
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			return false
		}
		from, to = x, y
	default:
		x, err := strconv.Atoi(rng)
		if err != nil {
			return false
		}
		if step == 1 {
			return v == x
		}
		from = x
	}
	return v >= from && v <= to && (v-from)%step == 0
}
