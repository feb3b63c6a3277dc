package notifier

import (
	"context"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// trusted returns the statuses of ev its writer may still be trusted for.
// A writer of epoch e that lost the model is trusted up to where the next
// epoch started: the newer holder applies the later requests again, and
// its outcomes are the ones that count. Epoch 0 is the dispatcher's
// rejections (unknown models, bad subjects), always kept, as are the
// statuses of a model that no longer exists.
func (n *Notifier) trusted(ctx context.Context, ev *teatreev1.Outcomes) ([]*teatreev1.RequestStatus, error) {
	statuses := ev.GetStatuses()
	if ev.GetEpoch() == 0 || n.deps.Models == nil {
		return statuses, nil
	}
	spec, _, err := catalog.GetModel(ctx, n.deps.Models, ev.GetModel())
	if notFound(err) {
		return statuses, nil
	}
	if err != nil {
		return nil, err
	}
	bound, limited := catalog.TrustedThrough(spec, ev.GetEpoch())
	if !limited {
		return statuses, nil
	}
	kept := make([]*teatreev1.RequestStatus, 0, len(statuses))
	for _, s := range statuses {
		if s.GetSeq() > bound {
			n.deps.Log.InfoContext(ctx, "drop the outcome of a writer that lost the model",
				"model", ev.GetModel(), "epoch", ev.GetEpoch(), "lease_epoch", spec.GetLeaseEpoch(),
				"seq", s.GetSeq(), "trusted_through", bound, "request_id", s.GetRequestId())
			continue
		}
		kept = append(kept, s)
	}
	return kept, nil
}

// notFound reports the error of a model that does not exist.
func notFound(err error) bool {
	if err == nil {
		return false
	}
	code, _ := apierr.From(err)
	return code == apierr.NotFound
}
