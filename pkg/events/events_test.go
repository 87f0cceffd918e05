package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A download's progress reads bytes, size, rate and time left for people,
// and the same numbers for machines.
func TestDownloadEvents(t *testing.T) {
	var b bytes.Buffer
	txt := &Text{W: &b}
	txt.Emit(Event{Type: Download, Action: "progress", Message: "kubelet v1.37.2 from https://dl.k8s.io/x", Bytes: 20e6, Total: 80e6, Rate: 10e6, Duration: 2 * time.Second})
	txt.Emit(Event{Type: Download, Action: "done", Message: "kubelet v1.37.2 from https://dl.k8s.io/x", Bytes: 80e6, Total: 80e6, Rate: 10e6, Duration: 8 * time.Second})
	want := "  download: kubelet v1.37.2 from https://dl.k8s.io/x: 20.0 MB of 80.0 MB (25%), 10.0 MB/s, 6s left\n" +
		"✓ download: kubelet v1.37.2 from https://dl.k8s.io/x, 80.0 MB in 8s, 10.0 MB/s\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	var j bytes.Buffer
	JSON{W: &j}.Emit(Event{Type: Download, Action: "done", Bytes: 80e6, Total: 80e6, Rate: 10e6, Duration: 8 * time.Second})
	var got map[string]any
	if err := json.Unmarshal(j.Bytes(), &got); err != nil || got["bytes"] != 80e6 || got["total"] != 80e6 || got["duration_s"] != 8.0 || !strings.Contains(j.String(), `"type":"download"`) {
		t.Errorf("json: %s (%v)", j.String(), err)
	}
}
