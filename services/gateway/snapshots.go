package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Content types of snapshot files.
const (
	contentDuckDB   = "application/octet-stream"
	contentManifest = subject.ContentJSON
)

// listSnapshots answers GET /v1/models/{model}/snapshots with the manifest
// of every version, newest first. A folder without a manifest is a version
// still being uploaded (or being collected) and is left out.
func (g *Gateway) listSnapshots(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model := r.PathValue("model")
	spec, err := g.spec(ctx, model)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	names, err := g.deps.Blobs.List(ctx, blob.ModelPrefix(model))
	if err != nil {
		g.writeError(w, r, fmt.Errorf("list snapshots of %s: %w", model, err))
		return
	}
	var versions []uint64
	for _, name := range names {
		if v, ok := blob.ParseVersionDir(name); ok && catalog.VersionVisible(spec, v) {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] > versions[j] })
	list := &teatreev1.SnapshotList{Snapshots: make([]*teatreev1.Manifest, 0, len(versions))}
	for _, v := range versions {
		m, _, err := g.manifest(ctx, model, v)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		list.Snapshots = append(list.Snapshots, m)
	}
	g.writeMessage(w, r, http.StatusOK, list)
}

// getSnapshotFile answers GET /v1/models/{model}/snapshots/{version}/{file}
// for the files a version's manifest lists, and the manifest itself, with
// Range and ETag support.
func (g *Gateway) getSnapshotFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model, file := r.PathValue("model"), r.PathValue("file")
	if err := subject.ValidateModel(model); err != nil {
		g.writeError(w, r, err)
		return
	}
	contentType, err := snapshotFileType(file)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	v, err := g.version(ctx, model, r.PathValue("version"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	m, raw, err := g.manifest(ctx, model, v)
	if errors.Is(err, blob.ErrNotFound) {
		err = apierr.Errorf(apierr.NotFound, "model %s has no version %d", model, v)
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set(subject.HeaderVersion, strconv.FormatUint(v, 10))
	w.Header().Set("Content-Type", contentType)
	if file == blob.ManifestFile {
		sum := sha256.Sum256(raw)
		w.Header().Set("ETag", etag(hex.EncodeToString(sum[:])))
		http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(raw))
		return
	}
	ref := fileRef(m, file)
	if ref == nil {
		g.writeError(w, r, apierr.Errorf(apierr.NotFound, "version %d of model %s has no file %s", v, model, file))
		return
	}
	obj, err := g.deps.Blobs.Open(ctx, blob.Key(model, v, file))
	if errors.Is(err, blob.ErrNotFound) {
		err = apierr.Errorf(apierr.NotFound, "version %d of model %s has no file %s (collected?)", v, model, file)
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer obj.Close()
	st, err := obj.Stat()
	if err != nil {
		g.writeError(w, r, fmt.Errorf("stat %s: %w", blob.Key(model, v, file), err))
		return
	}
	if ref.GetSha256() != "" {
		// Set before ServeContent, which answers If-None-Match and
		// If-Range from it.
		w.Header().Set("ETag", etag(ref.GetSha256()))
	}
	http.ServeContent(w, r, file, st.ModTime(), obj)
}

// version resolves a {version} path segment: a number, or latest for the
// newest version in the catalog.
// A version is published once the catalog commits it: a folder beyond
// the newest, or of a number a holder reserved and abandoned, is not one.
func (g *Gateway) version(ctx context.Context, model, s string) (uint64, error) {
	var v uint64
	if s != "latest" {
		var err error
		if v, err = strconv.ParseUint(s, 10, 64); err != nil || v == 0 {
			return 0, apierr.Errorf(apierr.InvalidArgument, "version %q: want a number from 1, or latest", s)
		}
	}
	spec, err := g.spec(ctx, model)
	if err != nil {
		return 0, err
	}
	if spec.GetVersion() == 0 {
		return 0, apierr.Errorf(apierr.NotFound, "model %s has no published version yet", model)
	}
	if v == 0 {
		v = spec.GetVersion()
	}
	if !catalog.VersionVisible(spec, v) {
		return 0, apierr.Errorf(apierr.NotFound, "model %s has no version %d (newest: %d)", model, v, spec.GetVersion())
	}
	return v, nil
}

// manifest reads and decodes a version's manifest; blob.ErrNotFound when
// the version has none.
func (g *Gateway) manifest(ctx context.Context, model string, v uint64) (*teatreev1.Manifest, []byte, error) {
	key := blob.Key(model, v, blob.ManifestFile)
	raw, err := g.deps.Blobs.Get(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	m := &teatreev1.Manifest{}
	if err := wire.Unmarshal(raw, m); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return m, raw, nil
}

// snapshotFileType checks a file name a snapshot may have and returns its
// content type.
func snapshotFileType(file string) (string, error) {
	switch file {
	case blob.DuckDBFile:
		return contentDuckDB, nil
	case blob.ManifestFile:
		return contentManifest, nil
	}
	table, ok := strings.CutSuffix(file, ".parquet")
	if !ok {
		return "", apierr.Errorf(apierr.InvalidArgument, "file %q: want %s, %s or <table>.parquet", file, blob.DuckDBFile, blob.ManifestFile)
	}
	if err := subject.ValidateTable(table); err != nil {
		return "", err
	}
	return subject.ContentParquet, nil
}

// fileRef returns the manifest's entry for file, or nil.
func fileRef(m *teatreev1.Manifest, file string) *teatreev1.FileRef {
	if m.GetDuckdb().GetPath() == file {
		return m.GetDuckdb()
	}
	for _, t := range m.GetTables() {
		if t.GetParquet().GetPath() == file {
			return t.GetParquet()
		}
	}
	return nil
}

func etag(sha string) string { return `"` + sha + `"` }
