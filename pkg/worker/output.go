package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Output is a handler's result: Arrow record batches, written as an IPC
// stream, or JSON rows, written as a JSON array of objects. Set one.
type Output struct {
	Arrow array.RecordReader
	Rows  []map[string]any
}

// Arrow is an Output of record batches; the worker releases rd.
func Arrow(rd array.RecordReader) Output { return Output{Arrow: rd} }

// JSON is an Output of rows.
func JSON(rows []map[string]any) Output {
	if rows == nil {
		rows = []map[string]any{}
	}
	return Output{Rows: rows}
}

// Release releases the Arrow reader, if any.
func (o Output) Release() {
	if o.Arrow != nil {
		o.Arrow.Release()
	}
}

// written is what a result holds, for the done event.
type written struct {
	contentType string
	rows, bytes int64
}

// writeResult writes out to rawURL: a file:// URL's file (its directory
// made first), written beside it and renamed so that no reader sees half
// of it; or an HTTP PUT of a temporary file, so that the request has a
// length, as a pre-signed S3 URL wants.
func writeResult(ctx context.Context, tmpDir, rawURL string, out Output) (written, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return written{}, apierr.Errorf(apierr.Internal, "result url: %v", err)
	}
	dir := tmpDir
	switch u.Scheme {
	case "file":
		dir = filepath.Dir(u.Path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return written{}, err
		}
	case "http", "https":
	default:
		return written{}, apierr.Errorf(apierr.Internal, "result url: scheme %q: want file, http or https", u.Scheme)
	}
	f, err := os.CreateTemp(dir, ".result-*")
	if err != nil {
		return written{}, err
	}
	defer os.Remove(f.Name())
	w, err := encode(ctx, f, out)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return written{}, err
	}
	if u.Scheme == "file" {
		return w, os.Rename(f.Name(), u.Path)
	}
	return w, put(ctx, rawURL, f.Name(), w)
}

// encode writes out to f as its content type says.
func encode(ctx context.Context, f *os.File, out Output) (written, error) {
	bw := bufio.NewWriter(f)
	var w written
	switch {
	case out.Arrow != nil:
		w.contentType = subject.ContentArrow
		iw := ipc.NewWriter(bw, ipc.WithSchema(out.Arrow.Schema()))
		for out.Arrow.Next() {
			if err := ctx.Err(); err != nil {
				return w, err
			}
			rec := out.Arrow.RecordBatch()
			if err := iw.Write(rec); err != nil {
				return w, fmt.Errorf("write arrow: %w", err)
			}
			w.rows += rec.NumRows()
		}
		if err := out.Arrow.Err(); err != nil {
			return w, err
		}
		if err := iw.Close(); err != nil {
			return w, err
		}
	default:
		w.contentType = subject.ContentJSON
		rows := out.Rows
		if rows == nil {
			rows = []map[string]any{}
		}
		if err := json.NewEncoder(bw).Encode(rows); err != nil {
			return w, apierr.Errorf(apierr.Internal, "result rows as JSON: %v", err)
		}
		w.rows = int64(len(rows))
	}
	if err := bw.Flush(); err != nil {
		return w, err
	}
	st, err := f.Stat()
	if err != nil {
		return w, err
	}
	w.bytes = st.Size()
	return w, nil
}

// put uploads the file at path to rawURL.
func put(ctx context.Context, rawURL, path string, w written) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, rawURL, f)
	if err != nil {
		return err
	}
	req.ContentLength = w.bytes
	req.Header.Set("Content-Type", w.contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload the result: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload the result: HTTP %s", resp.Status)
	}
	return nil
}
