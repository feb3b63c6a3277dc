package check

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// services are the SERVICE arguments of `teatree serve`.
var services = []string{"gateway", "dispatcher", "notifier", "node"}

// varRef matches a $(VAR) that Kubernetes expands in args from the env.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// CheckRefs checks what ties the objects of one render together: one
// image, Services and disruption budgets that select pods, a ScaledObject
// whose target exists, volumes and config that resolve, and args that
// `teatree serve` accepts (flags as ServeFlags returns them).
func CheckRefs(objs []Object, flags map[string]bool) error {
	ws := workloads(objs)
	var errs []error
	errs = append(errs, checkImages(ws)...)
	errs = append(errs, checkServices(objs, ws)...)
	errs = append(errs, checkBudgets(objs, ws)...)
	errs = append(errs, checkScaledObjects(objs, ws)...)
	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range typed[*corev1.ConfigMap](objs) {
		cms[cm.Name] = cm
	}
	for _, w := range ws {
		errs = append(errs, checkPod(w, cms, flags)...)
	}
	return errors.Join(errs...)
}

func checkImages(ws []workload) []error {
	images := map[string][]string{}
	for _, w := range ws {
		for _, c := range w.pod.Containers {
			images[c.Image] = append(images[c.Image], w.name)
		}
	}
	if len(images) > 1 {
		return []error{fmt.Errorf("containers run different images, want the one teatree image: %v", images)}
	}
	return nil
}

func checkServices(objs []Object, ws []workload) []error {
	var errs []error
	for _, s := range typed[*corev1.Service](objs) {
		var picked []workload
		for _, w := range ws {
			if selects(s.Spec.Selector, w.labels) {
				picked = append(picked, w)
			}
		}
		if len(picked) != 1 {
			errs = append(errs, fmt.Errorf("Service %s: selector %v picks the pods of %d workloads, want 1", s.Name, s.Spec.Selector, len(picked)))
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type == intstr.String && !hasPort(picked[0].pod, p.TargetPort.StrVal) {
				errs = append(errs, fmt.Errorf("Service %s: targetPort %q is no container port of %s", s.Name, p.TargetPort.StrVal, picked[0].name))
			}
		}
	}
	for _, ss := range typed[*appsv1.StatefulSet](objs) {
		if !slices.ContainsFunc(typed[*corev1.Service](objs), func(s *corev1.Service) bool {
			return s.Name == ss.Spec.ServiceName && s.Spec.ClusterIP == corev1.ClusterIPNone && selects(s.Spec.Selector, ss.Spec.Template.Labels)
		}) {
			errs = append(errs, fmt.Errorf("StatefulSet %s: serviceName %q is no headless Service selecting its pods", ss.Name, ss.Spec.ServiceName))
		}
	}
	return errs
}

func hasPort(pod corev1.PodSpec, name string) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func checkBudgets(objs []Object, ws []workload) []error {
	var errs []error
	for _, b := range typed[*policyv1.PodDisruptionBudget](objs) {
		n := 0
		for _, w := range ws {
			if b.Spec.Selector != nil && selects(b.Spec.Selector.MatchLabels, w.labels) {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: selects the pods of %d workloads, want 1", b.Name, n))
		}
	}
	return errs
}

func checkScaledObjects(objs []Object, ws []workload) []error {
	var errs []error
	for _, so := range typed[*kedav1alpha1.ScaledObject](objs) {
		ref := so.Spec.ScaleTargetRef
		if ref == nil || !slices.ContainsFunc(ws, func(w workload) bool { return w.kind == ref.Kind && w.name == ref.Name }) {
			errs = append(errs, fmt.Errorf("ScaledObject %s: scaleTargetRef %+v is no workload of this render", so.Name, ref))
		}
	}
	return errs
}

// checkPod checks one workload's pods: spread, volumes, config and args.
func checkPod(w workload, cms map[string]*corev1.ConfigMap, flags map[string]bool) []error {
	var errs []error
	where := w.kind + " " + w.name
	vols := slices.Clone(w.claims)
	for _, v := range w.pod.Volumes {
		vols = append(vols, v.Name)
	}
	for _, tsc := range w.pod.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, w.labels) {
			errs = append(errs, fmt.Errorf("%s: topologySpreadConstraint on %s does not select its own pods", where, tsc.TopologyKey))
		}
	}
	for _, c := range w.pod.Containers {
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
			if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
				if cm, ok := cms[r.ConfigMapKeyRef.Name]; ok {
					if _, ok := cm.Data[r.ConfigMapKeyRef.Key]; !ok {
						errs = append(errs, fmt.Errorf("%s: env %s: ConfigMap %s has no key %q", where, e.Name, cm.Name, r.ConfigMapKeyRef.Key))
					}
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if !slices.Contains(vols, m.Name) {
				errs = append(errs, fmt.Errorf("%s: volumeMount %s: no such volume or claim template", where, m.Name))
			}
		}
		errs = append(errs, checkArgs(where, c.Args, env, flags)...)
	}
	return errs
}

// checkArgs checks `serve SERVICE --flag=value...`: a service teatree
// has, flags that `teatree serve` accepts, $(VAR)s the container defines.
func checkArgs(where string, args []string, env, flags map[string]bool) []error {
	if len(args) < 2 || args[0] != "serve" || !slices.Contains(services, args[1]) {
		return []error{fmt.Errorf("%s: args %q: want serve and one of %v first", where, args, services)}
	}
	var errs []error
	for _, a := range args[2:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !flags[name] {
			errs = append(errs, fmt.Errorf("%s: arg %q: `teatree serve --help` has no such flag", where, a))
		}
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if !env[m[1]] {
				errs = append(errs, fmt.Errorf("%s: arg %q: $(%s) is not in the container's env, so Kubernetes passes it as it is", where, a, m[1]))
			}
		}
	}
	return errs
}
