package bench

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTargetNeedsExactlyOneNotificationPerRequest(t *testing.T) {
	r := &runner{opt: Options{Progress: io.Discard}, report: &Report{}}
	always := func(Result) bool { return true }
	r.add(Result{Scenario: "a", Notifications: &Notifications{Requests: 2, Notified: 2}}, always)
	r.add(Result{Scenario: "b", Notifications: &Notifications{Requests: 2, Notified: 2, Duplicates: 1}}, always)
	r.add(Result{Scenario: "c", Notifications: &Notifications{Requests: 2, Notified: 1}}, always)
	var met []bool
	for _, res := range r.report.Results {
		met = append(met, *res.Met)
	}
	require.Equal(t, []bool{true, false, false}, met)
}
