package auth

import (
	"path"
	"slices"
	"strings"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Permissions are NATS subject permissions: a principal may publish and
// subscribe on the subjects listed, and on nothing else.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// Catalog is what turns globs into NATS subjects, which know only whole
// tokens: the models there are, and the routes of the compute functions
// registered (function.Route). A principal's permissions are computed
// again when either changes.
type Catalog struct {
	Models []string
	Routes []string
}

// InboxPrefix is the inbox prefix a principal's NATS client must use
// (nats.go: nats.CustomInboxPrefix): replies to its requests come there,
// and only it may subscribe to them.
func InboxPrefix(principal string) string { return "_INBOX_" + principal }

// NATSPermissions returns what the principal may do on NATS, from its
// grants over the catalog's models. See docs/security.md for the subjects
// of each role.
func (pr *Principal) NATSPermissions(n subject.Names, cat Catalog) Permissions {
	var p Permissions
	p.Subscribe = append(p.Subscribe, InboxPrefix(pr.Name)+".>")
	p.Publish = append(p.Publish, "$JS.API.INFO")
	for _, model := range pr.natsModels(Read, cat) {
		p.Publish = append(p.Publish,
			n.Query(model),
			n.Call(subject.CapabilityDuckDB, model),
			"$JS.API.CONSUMER.CREATE."+n.NtfStream()+".*."+n.NtfModel(model),
		)
		p.Subscribe = append(p.Subscribe, n.NtfModel(model))
	}
	if pr.CanAnywhere(Read) {
		ntf := n.NtfStream()
		p.Publish = append(p.Publish,
			n.ResultAll(),
			"$JS.API.STREAM.INFO."+ntf,
			"$JS.API.CONSUMER.INFO."+ntf+".*",
			"$JS.API.CONSUMER.DELETE."+ntf+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+ntf+".*",
			"$JS.ACK."+ntf+".>",
			"$JS.FC."+ntf+".>",
		)
	}
	for _, model := range pr.natsModels(Write, cat) {
		p.Publish = append(p.Publish,
			n.MutBy(model, "*", pr.Name),
			n.CallBy(model, pr.Name),
		)
	}
	if routes := pr.natsRoutes(cat); len(routes) > 0 {
		call := n.CallStream()
		// A worker looks for TT_CALL and tt_compute before it binds
		// (serve worker waits for teatree's services to create them).
		p.Publish = append(p.Publish, n.Evt("*", "call"), "$KV."+n.ComputeBucket()+".>",
			"$JS.API.STREAM.INFO.KV_"+n.ComputeBucket(), "$JS.API.STREAM.INFO."+call)
		p.Subscribe = append(p.Subscribe, n.WorkCancel("*", "*"))
		for _, route := range routes {
			consumer := consumerName(route)
			p.Publish = append(p.Publish,
				"$JS.API.CONSUMER.CREATE."+call+"."+consumer+"."+n.CallRoute(route),
				"$JS.API.CONSUMER.INFO."+call+"."+consumer,
				"$JS.API.CONSUMER.MSG.NEXT."+call+"."+consumer,
				"$JS.ACK."+call+"."+consumer+".>",
			)
		}
	}
	slices.Sort(p.Publish)
	slices.Sort(p.Subscribe)
	return Permissions{Publish: slices.Compact(p.Publish), Subscribe: slices.Compact(p.Subscribe)}
}

// natsModels returns the subject tokens of the models the principal holds
// role on: "*" for a grant of every model, else the catalog's models the
// globs match (a name without wildcards stands for itself, so that a
// model created later is covered).
func (pr *Principal) natsModels(role Role, cat Catalog) []string {
	var out []string
	for _, g := range pr.Allow {
		if !slices.Contains(g.Roles, role) {
			continue
		}
		for _, glob := range g.Models {
			switch {
			case glob == "*":
				return []string{"*"}
			case !strings.ContainsAny(glob, "*?"):
				out = append(out, glob)
			default:
				for _, m := range cat.Models {
					if ok, _ := path.Match(glob, m); ok {
						out = append(out, m)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// natsRoutes returns the routes whose consumers the principal may read
// jobs from: ">" for a work grant of any capability, else the catalog's
// routes that need only capabilities it may serve.
func (pr *Principal) natsRoutes(cat Catalog) []string {
	var out []string
	for _, g := range pr.Allow {
		if !slices.Contains(g.Roles, Work) {
			continue
		}
		if slices.Contains(g.Capabilities, "*") {
			return []string{"*"}
		}
		for _, route := range cat.Routes {
			_, caps, _ := strings.Cut(route, "@")
			if g.covers(strings.Split(caps, "+")) {
				out = append(out, route)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// consumerName is the durable consumer of a route, or a wildcard for
// every route.
func consumerName(route string) string {
	if route == "*" {
		return "*"
	}
	return calls.Consumer(route)
}
