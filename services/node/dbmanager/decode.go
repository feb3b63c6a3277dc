package dbmanager

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// decodedBody is a row body made readable by DuckDB: Arrow batches held in
// memory, or a spool file that one of DuckDB's readers scans.
type decodedBody struct {
	schema  *arrow.Schema
	records []arrow.RecordBatch
	// scan is the table expression over a spool file, for the other formats.
	scan      string
	spoolFile string
}

func (d *decodedBody) release() {
	for _, r := range d.records {
		r.Release()
	}
	d.records = nil
	if d.spoolFile != "" {
		os.Remove(d.spoolFile)
	}
}

// decode checks and prepares a row body. Arrow IPC is read completely here,
// so a truncated stream fails before any SQL runs; the text formats and
// Parquet are left to DuckDB's readers, which check them as they scan.
func decode(body []byte, contentType, spoolFile string) (*decodedBody, error) {
	switch contentType {
	case subject.ContentArrow:
		return decodeArrow(body)
	case subject.ContentParquet, subject.ContentCSV, subject.ContentNDJSON, subject.ContentJSON:
	case "":
		return nil, apierr.Errorf(apierr.InvalidArgument, "rows need a Content-Type: %s, %s, %s, %s or %s",
			subject.ContentArrow, subject.ContentParquet, subject.ContentCSV, subject.ContentNDJSON, subject.ContentJSON)
	default:
		return nil, apierr.Errorf(apierr.InvalidArgument, "unsupported Content-Type %q for rows", contentType)
	}
	if contentType == subject.ContentJSON {
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '[' {
			return nil, apierr.New(apierr.InvalidArgument, "a JSON body must be an array of objects")
		}
	}
	path := spoolFile
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return nil, fmt.Errorf("spool body: %w", err)
	}
	p := quoteString(path)
	d := &decodedBody{spoolFile: path}
	switch contentType {
	case subject.ContentParquet:
		d.scan = "read_parquet(" + p + ")"
	case subject.ContentCSV:
		d.scan = "read_csv(" + p + ", header=true, delim=',', quote='\"', escape='\"', strict_mode=true)"
	case subject.ContentNDJSON:
		d.scan = "read_json(" + p + ", format='newline_delimited', records='true')"
	case subject.ContentJSON:
		d.scan = "read_json(" + p + ", format='array', records='true')"
	}
	return d, nil
}

func decodeArrow(body []byte) (*decodedBody, error) {
	rd, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, apierr.Errorf(apierr.InvalidArgument, "arrow ipc stream: %v", err)
	}
	defer rd.Release()
	d := &decodedBody{schema: rd.Schema()}
	for rd.Next() {
		rec := rd.RecordBatch()
		rec.Retain()
		d.records = append(d.records, rec)
	}
	if err := rd.Err(); err != nil {
		d.release()
		return nil, apierr.Errorf(apierr.InvalidArgument, "arrow ipc stream: %v", err)
	}
	if d.schema.NumFields() == 0 {
		d.release()
		return nil, apierr.New(apierr.InvalidArgument, "arrow ipc stream: no columns")
	}
	return d, nil
}

// source makes the decoded rows scannable as a table expression for one
// attempt at applying them; release undoes it.
func (s *store) source(d *decodedBody, seq uint64) (expr string, release func(), err error) {
	if d.scan != "" {
		return d.scan, func() {}, nil
	}
	name := "_tt_src_" + strconv.FormatUint(seq, 10)
	reader, err := array.NewRecordReader(d.schema, d.records)
	if err != nil {
		return "", nil, apierr.Errorf(apierr.InvalidArgument, "arrow ipc stream: %v", err)
	}
	var unregister func()
	err = s.withDriverConn(func(c *duckdb.Conn) error {
		ar, err := duckdb.NewArrowFromConn(c)
		if err != nil {
			return err
		}
		unregister, err = ar.RegisterView(reader, name)
		return err
	})
	if err != nil {
		reader.Release()
		return "", nil, apierr.Errorf(apierr.InvalidArgument, "arrow ipc stream: %v", err)
	}
	return quoteIdent(name), func() { unregister(); reader.Release() }, nil
}
