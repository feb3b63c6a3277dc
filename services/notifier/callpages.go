package notifier

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// A call's result is paged by the notifier: every page stands alone, an
// Arrow IPC stream with its schema or a JSON array, with at most pageRows
// rows; an empty result is one empty page.

// resultPages splits a worker's result of content type ct into pages and
// counts its rows. An error means the result is not what the worker said.
func resultPages(ct string, body []byte, pageRows int) ([][]byte, int64, error) {
	switch ct {
	case subject.ContentArrow:
		return arrowPages(body, pageRows)
	case subject.ContentJSON:
		return jsonPages(body, pageRows)
	}
	return nil, 0, fmt.Errorf("content type %q: want %s or %s", ct, subject.ContentArrow, subject.ContentJSON)
}

func arrowPages(body []byte, pageRows int) ([][]byte, int64, error) {
	rd, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("not an Arrow IPC stream: %w", err)
	}
	defer rd.Release()
	var (
		pages        [][]byte
		page         []arrow.RecordBatch
		inPage, rows int64
	)
	defer func() {
		for _, r := range page {
			r.Release()
		}
	}()
	flush := func() error {
		b, err := arrowPage(rd.Schema(), page)
		for _, r := range page {
			r.Release()
		}
		page, inPage = page[:0], 0
		pages = append(pages, b)
		return err
	}
	for rd.Next() {
		rec := rd.RecordBatch()
		for off := int64(0); off < rec.NumRows(); {
			n := min(rec.NumRows()-off, int64(pageRows)-inPage)
			page = append(page, rec.NewSlice(off, off+n))
			off, inPage, rows = off+n, inPage+n, rows+n
			if inPage == int64(pageRows) {
				if err := flush(); err != nil {
					return nil, 0, err
				}
			}
		}
	}
	if err := rd.Err(); err != nil {
		return nil, 0, fmt.Errorf("not an Arrow IPC stream: %w", err)
	}
	if inPage > 0 || len(pages) == 0 {
		if err := flush(); err != nil {
			return nil, 0, err
		}
	}
	return pages, rows, nil
}

// arrowPage is one whole IPC stream of recs.
func arrowPage(schema *arrow.Schema, recs []arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			return nil, fmt.Errorf("encode arrow page: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode arrow page: %w", err)
	}
	return buf.Bytes(), nil
}

func jsonPages(body []byte, pageRows int) ([][]byte, int64, error) {
	var rows []json.RawMessage
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, 0, fmt.Errorf("not a JSON array: %w", err)
	}
	if rows == nil {
		return nil, 0, fmt.Errorf("not a JSON array: null")
	}
	for i, r := range rows {
		if r[0] != '{' {
			return nil, 0, fmt.Errorf("row %d is not a JSON object", i+1)
		}
	}
	var pages [][]byte
	for start := 0; start < len(rows) || len(pages) == 0; start += pageRows {
		b, err := json.Marshal(rows[start:min(start+pageRows, len(rows))])
		if err != nil {
			return nil, 0, err
		}
		pages = append(pages, b)
	}
	return pages, int64(len(rows)), nil
}
