package query

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Result formats of the contract.
const (
	FormatJSON   = "json"
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
	FormatArrow  = "arrow"
)

// contentType returns the content type of a format, or an error for a
// format the contract does not have.
func contentType(format string) (string, error) {
	switch format {
	case FormatJSON:
		return subject.ContentJSON, nil
	case FormatNDJSON:
		return subject.ContentNDJSON, nil
	case FormatCSV:
		return subject.ContentCSV, nil
	case FormatArrow:
		return subject.ContentArrow, nil
	}
	return "", apierr.Errorf(apierr.InvalidArgument, "format %q: want json, ndjson, csv or arrow", format)
}

// encodePage encodes the rows of one page. Every page stands alone: a CSV
// page has its header, an Arrow page is a whole IPC stream with its schema,
// a JSON page is a whole array.
func encodePage(format string, schema *arrow.Schema, recs []arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	switch format {
	case FormatArrow:
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				return nil, fmt.Errorf("encode arrow: %w", err)
			}
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("encode arrow: %w", err)
		}
	case FormatCSV:
		w := csv.NewWriter(&buf, schema, csv.WithHeader(true), csv.WithNullWriter(""))
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				return nil, fmt.Errorf("encode csv: %w", err)
			}
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return nil, fmt.Errorf("encode csv: %w", err)
		}
	case FormatNDJSON, FormatJSON:
		for _, r := range recs {
			if err := array.RecordToJSON(r, &buf); err != nil {
				return nil, fmt.Errorf("encode json: %w", err)
			}
		}
		if format == FormatJSON {
			// One object a line, and JSON strings hold no raw newline: the
			// newlines between objects become the array's commas.
			lines := bytes.TrimRight(buf.Bytes(), "\n")
			out := make([]byte, 0, len(lines)+2)
			out = append(out, '[')
			out = append(out, bytes.ReplaceAll(lines, []byte("\n"), []byte(","))...)
			return append(out, ']'), nil
		}
	}
	return buf.Bytes(), nil
}
