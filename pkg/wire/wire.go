// Package wire encodes the contract's messages as JSON: snake_case field
// names and, unlike protojson, 64-bit integers as JSON numbers, as
// CONTRACT.md shows them ("seq":42) and as every JSON client expects.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// Marshal encodes m as JSON.
func Marshal(m proto.Message) ([]byte, error) {
	b, err := marshal.Marshal(m)
	if err != nil {
		return nil, err
	}
	if !has64(m.ProtoReflect().Descriptor(), map[protoreflect.FullName]bool{}) {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("re-read %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	unquote(m.ProtoReflect().Descriptor(), v)
	return json.Marshal(v)
}

// Unmarshal decodes JSON into m. Unknown fields are ignored, so newer
// clients can talk to older servers; 64-bit integers may be numbers or
// strings.
func Unmarshal(b []byte, m proto.Message) error {
	return unmarshal.Unmarshal(b, m)
}

func is64(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind,
		protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

// has64 reports whether a message has a 64-bit integer field anywhere.
func has64(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if is64(f.Kind()) || f.Message() != nil && !isWellKnown(f.Message()) && has64(f.Message(), seen) {
			return true
		}
	}
	return false
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

// unquote turns protojson's quoted 64-bit integers in v back into numbers.
func unquote(md protoreflect.MessageDescriptor, v any) {
	obj, ok := v.(map[string]any)
	if !ok || isWellKnown(md) {
		return
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		val, ok := obj[string(f.Name())]
		if !ok {
			continue
		}
		switch {
		case f.IsMap():
			// No map fields in the contract.
		case is64(f.Kind()):
			if f.IsList() {
				list, _ := val.([]any)
				for j, e := range list {
					list[j] = number(e)
				}
			} else {
				obj[string(f.Name())] = number(val)
			}
		case f.Message() != nil:
			if f.IsList() {
				list, _ := val.([]any)
				for _, e := range list {
					unquote(f.Message(), e)
				}
			} else {
				unquote(f.Message(), val)
			}
		}
	}
}

func number(v any) any {
	if s, ok := v.(string); ok {
		return json.Number(s)
	}
	return v
}
