package check

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// sizeLabel names a node StatefulSet's size class.
const sizeLabel = "teatree.dev/size"

// Classes are the node size classes of issue 11 and the original design:
// the vCPUs and memory of a node pod of each.
var Classes = map[string]struct{ CPU, Memory string }{
	"small":  {"2", "2Gi"},
	"medium": {"4", "4Gi"},
	"large":  {"8", "16Gi"},
	"xlarge": {"16", "64Gi"},
}

// CheckSizes checks every node StatefulSet of a render: its class label
// is a class, its --size is that class, its requests and limits are the
// class's, DuckDB's --threads are its vCPUs and its --memory leaves room
// below the memory limit.
func CheckSizes(objs []Object) error {
	var errs []error
	for _, ss := range typed[*appsv1.StatefulSet](objs) {
		if err := checkSize(ss); err != nil {
			errs = append(errs, fmt.Errorf("StatefulSet %s: %w", ss.Name, err))
		}
	}
	return errors.Join(errs...)
}

func checkSize(ss *appsv1.StatefulSet) error {
	class := ss.Labels[sizeLabel]
	want, ok := Classes[class]
	if !ok {
		return fmt.Errorf("label %s=%q: want one of small, medium, large, xlarge", sizeLabel, class)
	}
	if ss.Spec.Template.Labels[sizeLabel] != class {
		return fmt.Errorf("pods lack label %s=%s", sizeLabel, class)
	}
	c := ss.Spec.Template.Spec.Containers[0]
	// DuckDB counts the machine's cores and memory, not the pod's: the
	// class sets its threads and memory.
	for _, want := range []string{"--size=" + class, "--threads=" + want.CPU} {
		if !slices.Contains(c.Args, want) {
			return fmt.Errorf("args %q: want %s", c.Args, want)
		}
	}
	cpu, mem := resource.MustParse(want.CPU), resource.MustParse(want.Memory)
	for what, rl := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
		if rl.Cpu().Cmp(cpu) != 0 || rl.Memory().Cmp(mem) != 0 {
			return fmt.Errorf("%s cpu %s memory %s: class %s is cpu %s memory %s", what, rl.Cpu(), rl.Memory(), class, want.CPU, want.Memory)
		}
	}
	var duck resource.Quantity
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--memory="); ok {
			// teatree writes 512MiB, Kubernetes 512Mi.
			q, err := resource.ParseQuantity(strings.TrimSuffix(v, "B"))
			if err != nil {
				return fmt.Errorf("arg %q: %w", a, err)
			}
			duck = q
		}
	}
	if duck.IsZero() || duck.Cmp(mem) >= 0 {
		return fmt.Errorf("--memory %s: want DuckDB's memory set, below the pod's %s", duck.String(), want.Memory)
	}
	return nil
}
