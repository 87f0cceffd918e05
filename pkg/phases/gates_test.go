package phases

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod that waits says why: its container's waiting message first, else
// its latest Warning event (a sandbox kubelet cannot create is only an
// event), else its unmet condition.
func TestPodWaitReason(t *testing.T) {
	pod := func(name string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	}
	at := func(s int) metav1.Time { return metav1.NewTime(time.Unix(int64(s), 0)) }
	ev := func(pod, reason, msg string, s int) corev1.Event {
		return corev1.Event{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod}, Reason: reason, Message: msg, LastTimestamp: at(s)}
	}
	events := []corev1.Event{
		ev("coredns-a", "FailedCreatePodSandBox", "old", 1),
		ev("coredns-a", "FailedCreatePodSandBox", `plugin type="bridge" failed (add): failed to set bridge addr`, 5),
		ev("other", "BackOff", "not this one", 9),
	}
	waitingImage := pod("coredns-b")
	waitingImage.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}}}
	unscheduled := pod("coredns-c")
	unscheduled.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/5 nodes are available"}}
	for _, tc := range []struct {
		pod  corev1.Pod
		want string
	}{
		{pod("coredns-a"), "FailedCreatePodSandBox: plugin type=\"bridge\" failed (add): failed to set bridge addr"},
		{waitingImage, "ErrImagePull: not found"},
		{unscheduled, "PodScheduled: 0/5 nodes are available"},
		{pod("quiet"), ""},
	} {
		if got := podWaitReason(&tc.pod, events); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.pod.Name, got, tc.want)
		}
	}
	if got := clip(strings.Repeat("x", 400), 300); len(got) != 300+len("…") {
		t.Errorf("clip: %d bytes", len(got))
	}
}
