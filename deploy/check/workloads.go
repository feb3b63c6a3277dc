package check

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// workload is a Deployment or StatefulSet seen through what the checks
// need: its pods' labels and spec.
type workload struct {
	kind, name string
	labels     map[string]string
	pod        corev1.PodSpec
	// claims are the names of a StatefulSet's volume claim templates,
	// which its containers mount like volumes.
	claims []string
}

func workloads(objs []Object) []workload {
	var ws []workload
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{kind: "Deployment", name: v.Name, labels: v.Spec.Template.Labels, pod: v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			w := workload{kind: "StatefulSet", name: v.Name, labels: v.Spec.Template.Labels, pod: v.Spec.Template.Spec}
			for _, c := range v.Spec.VolumeClaimTemplates {
				w.claims = append(w.claims, c.Name)
			}
			ws = append(ws, w)
		}
	}
	return ws
}

// selects reports whether a label selector (matchLabels or a Service's
// selector) picks pods with labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// typed returns the objects of one Go type.
func typed[T any](objs []Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
