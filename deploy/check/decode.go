package check

import (
	"fmt"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// Object is one decoded manifest: its kind and name, and the typed value.
type Object struct {
	GVK  schema.GroupVersionKind
	Name string
	Obj  runtime.Object
}

// Decoder decodes manifests strictly: an unknown field, a duplicate field
// or a kind that neither Kubernetes nor KEDA defines is an error.
type Decoder struct {
	ser *json.Serializer
}

// NewDecoder returns a Decoder for the built-in Kubernetes kinds and KEDA's.
func NewDecoder() (*Decoder, error) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		return nil, fmt.Errorf("register kubernetes types: %w", err)
	}
	if err := kedav1alpha1.AddToScheme(sch); err != nil {
		return nil, fmt.Errorf("register keda types: %w", err)
	}
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, sch, sch,
		json.SerializerOptions{Yaml: true, Strict: true})
	return &Decoder{ser: ser}, nil
}

// Decode decodes one YAML document into its Go type.
func (d *Decoder) Decode(doc []byte) (Object, error) {
	obj, gvk, err := d.ser.Decode(doc, nil, nil)
	if err != nil {
		return Object{}, err
	}
	type named interface{ GetName() string }
	n, ok := obj.(named)
	if !ok {
		return Object{}, fmt.Errorf("%s: not an object with metadata", gvk)
	}
	return Object{GVK: *gvk, Name: n.GetName(), Obj: obj}, nil
}
