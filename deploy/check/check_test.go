package check

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// deployDir is deploy/, this module's parent.
const deployDir = ".."

// classless is the kustomization of nodes without a size class, which
// only the class overlays use.
var classless = filepath.Join(deployDir, "node")

// serveFlags returns the flags of the teatree binary that make test-deploy
// builds.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := os.Getenv("TEATREE_BIN")
	require.NotEmpty(t, bin, "TEATREE_BIN is not set: run `make test-deploy`, which builds bin/teatree and sets it")
	flags, err := ServeFlags(bin)
	require.NoError(t, err)
	return flags
}

// kustomizations returns every directory of deploy/ (outside this module)
// with a kustomization that kubectl can apply; Components are applied
// through the overlays that list them.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join(deployDir, "check") {
			return filepath.SkipDir
		}
		if d.Name() != "kustomization.yaml" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct{ Kind string }
		if err := yaml.Unmarshal(b, &k); err != nil {
			return err
		}
		if k.Kind != "Component" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	require.NoError(t, err)
	return dirs
}

func TestEveryKustomizationRendersStrictly(t *testing.T) {
	flags := serveFlags(t)
	d, err := NewDecoder()
	require.NoError(t, err)
	dirs := kustomizations(t)
	for _, want := range []string{"base", "node", "overlays/small", "overlays/medium", "overlays/large", "overlays/xlarge", "overlays/example"} {
		require.Contains(t, dirs, filepath.Join(deployDir, want))
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			objs, err := Render(d, dir)
			require.NoError(t, err)
			require.NotEmpty(t, objs)
			require.NoError(t, CheckRefs(objs, flags))
			if dir != classless {
				require.NoError(t, CheckSizes(objs))
			}
		})
	}
}

// The example composes a whole cluster, so everything it refers to is in
// it: every ConfigMap, the autoscaled StatefulSet, the gateway Service.
func TestExampleIsComplete(t *testing.T) {
	d, err := NewDecoder()
	require.NoError(t, err)
	objs, err := Render(d, filepath.Join(deployDir, "overlays", "example"))
	require.NoError(t, err)
	kinds := map[string][]string{}
	for _, o := range objs {
		kinds[o.GVK.Kind] = append(kinds[o.GVK.Kind], o.Name)
	}
	require.ElementsMatch(t, []string{"teatree-gateway", "teatree-dispatcher", "teatree-notifier"}, kinds["Deployment"])
	require.ElementsMatch(t, []string{"teatree-node-medium", "teatree-node-large"}, kinds["StatefulSet"])
	require.Equal(t, []string{"teatree-node"}, kinds["ScaledObject"])
	for _, ss := range typed[*appsv1.StatefulSet](objs) {
		if ss.Name == "teatree-node-medium" {
			require.Nil(t, ss.Spec.Replicas, "KEDA owns the autoscaled StatefulSet's replicas")
		} else {
			require.NotNil(t, ss.Spec.Replicas, ss.Name)
		}
	}
	require.ElementsMatch(t, []string{"teatree-gateway", "teatree-dispatcher", "teatree-notifier"}, kinds["PodDisruptionBudget"])
	for _, w := range workloads(objs) {
		for _, c := range w.pod.Containers {
			require.Equal(t, "registry.example.com/teatree:0.1.0", c.Image, w.name)
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
					require.Contains(t, kinds["ConfigMap"], r.ConfigMapKeyRef.Name, "%s env %s", w.name, e.Name)
				}
			}
		}
	}
	for _, o := range objs {
		if o.GVK.Kind != "Namespace" {
			ns := o.Obj.(interface{ GetNamespace() string }).GetNamespace()
			require.Equal(t, "teatree", ns, "%s %s", o.GVK.Kind, o.Name)
		}
	}
	for _, s := range typed[*corev1.Service](objs) {
		if s.Name == "teatree-gateway" {
			require.Equal(t, map[string]string{"app.kubernetes.io/name": "teatree-gateway"}, s.Spec.Selector)
		}
	}
}

func TestNATSValues(t *testing.T) {
	require.NoError(t, CheckNATSValues(filepath.Join(deployDir, "nats", "values.yaml")))
}

// Each broken manifest in testdata must fail the check that guards it: a
// check that passes everything would pass these too.
func TestBrokenManifestsFail(t *testing.T) {
	flags := serveFlags(t)
	d, err := NewDecoder()
	require.NoError(t, err)
	for _, tc := range []struct {
		dir, want string
	}{
		{"unknown-field", `unknown field "spec.replica"`},
		{"duplicate-field", `already defined`},
		{"keda-unknown-field", `unknown field "spec.triggers[0].metdata"`},
		{"unknown-kind", `no kind "Deploymnt"`},
		{"kustomization-unknown-field", `namePrefx`},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			_, err := Render(d, filepath.Join("testdata", tc.dir))
			require.ErrorContains(t, err, tc.want)
		})
	}
	for _, tc := range []struct {
		dir, want string
	}{
		{"unknown-flag", "`teatree serve --help` has no such flag"},
		{"unselected-service", "picks the pods of 0 workloads"},
		{"lost-scale-target", "is no workload of this render"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			objs, err := Render(d, filepath.Join("testdata", tc.dir))
			require.NoError(t, err)
			require.ErrorContains(t, CheckRefs(objs, flags), tc.want)
		})
	}
	t.Run("wrong-class-resources", func(t *testing.T) {
		objs, err := Render(d, filepath.Join("testdata", "wrong-class-resources"))
		require.NoError(t, err)
		require.ErrorContains(t, CheckSizes(objs), "class small is cpu 2 memory 2Gi")
	})
	t.Run("nats-values-typo", func(t *testing.T) {
		require.ErrorContains(t, CheckNATSValues(filepath.Join("testdata", "nats-values-typo.yaml")), `unknown field "sync_intervall"`)
	})
}
