package check

import (
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// NATSValues are the keys of the official NATS chart's values.yaml
// (nats-io/k8s, helm/charts/nats, 2.14.x) that deploy/nats/values.yaml
// sets. The chart ships no values.schema.json, so this struct is the
// schema: decoding strictly against it fails on a key the chart does not
// have at that place (a typo the chart would silently ignore).
type NATSValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `json:"enabled"`
			Replicas int  `json:"replicas"`
		} `json:"cluster"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				Enabled bool   `json:"enabled"`
				Dir     string `json:"dir"`
				PVC     struct {
					Enabled bool   `json:"enabled"`
					Size    string `json:"size"`
				} `json:"pvc"`
			} `json:"fileStore"`
			MemoryStore struct {
				Enabled bool `json:"enabled"`
			} `json:"memoryStore"`
			// Merge goes into the server's jetstream {} block.
			Merge struct {
				SyncInterval string `json:"sync_interval"`
				Limits       struct {
					DefaultMaxConsumers int `json:"default_max_consumers"`
				} `json:"limits"`
			} `json:"merge"`
		} `json:"jetstream"`
		// Merge goes into the server's top-level configuration.
		Merge struct {
			MaxPayload int64 `json:"max_payload"`
		} `json:"merge"`
	} `json:"config"`
	Container struct {
		Resources corev1.ResourceRequirements `json:"resources"`
	} `json:"container"`
	PodTemplate struct {
		// TopologySpreadConstraints maps a topology key to the rest of a
		// constraint; the chart adds the key and the label selector.
		TopologySpreadConstraints map[string]struct {
			MaxSkew           int32                                `json:"maxSkew"`
			WhenUnsatisfiable corev1.UnsatisfiableConstraintAction `json:"whenUnsatisfiable"`
		} `json:"topologySpreadConstraints"`
	} `json:"podTemplate"`
}

// maxPayload is the embedded server's (natsboot.DefaultMaxPayload): a
// cluster must take the messages `teatree up` takes.
const maxPayload = 8 << 20

// CheckNATSValues decodes the values file at path strictly and checks
// what teatree needs of the cluster: three servers, JetStream on volumes,
// an fsync before every ack, no cap on consumers per stream, 8 MiB
// messages.
func CheckNATSValues(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var v NATSValues
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c, js := v.Config, v.Config.JetStream
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
		}
	}
	check(c.Cluster.Enabled && c.Cluster.Replicas == 3, "config.cluster: want enabled with 3 replicas, for streams with --replicas 3")
	check(js.Enabled && js.FileStore.Enabled && js.FileStore.PVC.Enabled && !js.MemoryStore.Enabled,
		"config.jetstream: want enabled, with the file store on a volume (fileStore.pvc) and no memory store")
	check(js.Merge.SyncInterval == "always", "config.jetstream.merge.sync_interval is %q, want always: an acked write is otherwise lost on power failure", js.Merge.SyncInterval)
	check(js.Merge.Limits.DefaultMaxConsumers == -1, "config.jetstream.merge.limits.default_max_consumers is %d, want -1 (one consumer per running model)", js.Merge.Limits.DefaultMaxConsumers)
	check(c.Merge.MaxPayload == maxPayload, "config.merge.max_payload is %d, want %d (8 MiB)", c.Merge.MaxPayload, maxPayload)
	return errors.Join(errs...)
}
