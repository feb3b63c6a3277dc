package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func pullCmd() *cobra.Command {
	var version, out string
	var parquet, quiet bool
	cmd := &cobra.Command{
		Use:   "pull MODEL",
		Short: "Download a version of a model and check it against its manifest",
		Long: `Download a published version of a model: its manifest, its read-only DuckDB
file and, with --parquet, one Parquet file per table. Every file is checked
against the manifest's SHA-256 before it takes its final name, so a file in
--out is always whole and right. Open the DuckDB file read-only with any
DuckDB 1.5 client:  duckdb -readonly ./sales/model.duckdb`,
		Example: "  teatree pull sales\n  teatree pull sales --version 7 --parquet --out ./sales-v7",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			model := args[0]
			if out == "" {
				out = model
			}
			c := clientOf(cmd)
			// Pin the version while it downloads, so it is not collected
			// half way; every file then comes from that one version.
			pin, err := c.Pin(cmd.Context(), model, version)
			if err != nil {
				return fmt.Errorf("pin %s version %s: %w", model, version, err)
			}
			defer c.Unpin(context.WithoutCancel(cmd.Context()), pin)
			stopRenew := renewPin(cmd.Context(), c, pin)
			defer stopRenew()
			v := strconv.FormatUint(pin.GetVersion(), 10)
			man, err := fetchManifest(cmd.Context(), c, model, v)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			files := []*teatreev1.FileRef{man.GetDuckdb()}
			if parquet {
				for _, t := range man.GetTables() {
					if t.GetParquet() != nil {
						files = append(files, t.GetParquet())
					}
				}
			}
			for _, f := range files {
				if err := download(cmd, c, model, v, f, out, quiet); err != nil {
					return err
				}
			}
			b, err := wire.Marshal(man)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "manifest.json"), b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %s version %d (applied_seq %d) into %s\n", model, man.GetVersion(), man.GetAppliedSeq(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "latest", "version to pull: a number or latest")
	cmd.Flags().StringVar(&out, "out", "", "directory to write to (default: ./MODEL)")
	cmd.Flags().BoolVar(&parquet, "parquet", false, "also download each table's Parquet file")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	addServerFlag(cmd)
	return cmd
}

// renewPin renews a pin at a third of its TTL until stop is called.
func renewPin(ctx context.Context, c *client.Client, pin *teatreev1.VersionPin) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(max(time.Duration(pin.GetTtlMs())*time.Millisecond/3, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = c.RenewPin(ctx, pin)
			}
		}
	}()
	return cancel
}

func fetchManifest(ctx context.Context, c *client.Client, model, version string) (*teatreev1.Manifest, error) {
	resp, err := c.Download(ctx, model, version, "manifest.json")
	if err != nil {
		return nil, fmt.Errorf("manifest of %s version %s: %w", model, version, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	man := &teatreev1.Manifest{}
	if err := wire.Unmarshal(b, man); err != nil {
		return nil, fmt.Errorf("manifest of %s version %s: %w", model, version, err)
	}
	return man, nil
}

// download fetches one file to a temporary name, checks its checksum and
// size, and only then renames it into place.
func download(cmd *cobra.Command, c *client.Client, model, version string, f *teatreev1.FileRef, dir string, quiet bool) error {
	resp, err := c.Download(cmd.Context(), model, version, f.GetPath())
	if err != nil {
		return fmt.Errorf("download %s: %w", f.GetPath(), err)
	}
	defer resp.Body.Close()
	dst := filepath.Join(dir, f.GetPath())
	tmp, err := os.CreateTemp(dir, ".pull-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	if !quiet {
		bar := progressbar.DefaultBytes(f.GetBytes(), f.GetPath())
		w = io.MultiWriter(w, bar)
	}
	n, err := io.Copy(w, resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", f.GetPath(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.GetBytes() || got != f.GetSha256() {
		return fmt.Errorf("download %s: got %d bytes with sha256 %s, the manifest says %d bytes with %s; try again", f.GetPath(), n, got, f.GetBytes(), f.GetSha256())
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
