package worker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/worker"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	h := map[string]worker.Handler{"h": func(context.Context, *worker.Input) (worker.Output, error) { return worker.JSON(nil), nil }}
	for _, c := range []struct {
		name string
		cfg  worker.Config
		err  string
	}{
		{"ok", worker.Config{ID: "w-1", Capabilities: []string{"go"}, Handlers: h}, ""},
		{"default id", worker.Config{Capabilities: []string{"go"}, Handlers: h}, ""},
		{"bad id", worker.Config{ID: "w.1", Capabilities: []string{"go"}, Handlers: h}, `worker id "w.1"`},
		{"no capability", worker.Config{ID: "w-1", Handlers: h}, "at least one capability"},
		{"bad capability", worker.Config{ID: "w-1", Capabilities: []string{"Go"}, Handlers: h}, `capability "Go"`},
		{"no handler", worker.Config{ID: "w-1", Capabilities: []string{"go"}}, "at least one handler"},
		{"bad handler", worker.Config{ID: "w-1", Capabilities: []string{"go"},
			Handlers: map[string]worker.Handler{"a.b": h["h"]}}, `handler "a.b"`},
		{"slots", worker.Config{ID: "w-1", Capabilities: []string{"go"}, Handlers: h, Slots: -1}, "slots -1"},
	} {
		err := c.cfg.WithDefaults().Validate()
		if c.err == "" {
			require.NoError(t, err, c.name)
		} else {
			require.ErrorContains(t, err, c.err, c.name)
		}
	}
}
