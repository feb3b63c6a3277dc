// Package check validates deploy/ offline: it renders every Kustomize base
// and overlay, decodes each object strictly against the Kubernetes API types
// (and KEDA's for the ScaledObject), decodes the NATS chart values against
// the keys teatree uses, and checks the references between objects and
// the flags of `teatree serve`. No cluster is needed. It is a module of its
// own so that the main go.mod does not carry the Kubernetes libraries.
package check
