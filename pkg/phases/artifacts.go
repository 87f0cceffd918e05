package phases

import (
	"context"
	"errors"
	"fmt"

	"k4t.io/k4t/pkg/engine"
)

// Artifacts fetches, on the bastion, every artifact that comes from a URL
// or a registry (the upstream releases, a mirror), and checks each against
// the sum its project published or the one pinned in the state dir, before
// any host is changed: a tampered or missing file stops the run here.
type Artifacts struct{}

func (*Artifacts) Name() string { return "artifacts" }
func (*Artifacts) Title() string {
	return "Artifacts: fetch the releases and images onto the bastion, each checked against its published sum"
}

func (*Artifacts) ShouldRun(r *engine.Run) bool {
	return r.Options.Artifacts != nil && r.Options.Artifacts.Remote()
}

func (*Artifacts) Prepare(ctx context.Context, r *engine.Run) error {
	if errs := r.Options.Artifacts.Fetch(ctx); len(errs) > 0 {
		return fmt.Errorf("%d artifact(s) could not be fetched and verified; no host was changed:\n%w", len(errs), errors.Join(errs...))
	}
	return nil
}
