package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/artifacts"
)

// artifactFlags choose the manifest: a file, a bundle dir, or by default what
// hack/build-artifacts/build.sh built for the given versions.
type artifactFlags struct {
	manifest, dir, bundle, cacheDir string
	inventory                       string
	k8sVersion, etcdVersion         string
}

func (f *artifactFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.inventory, "file", "f", "", "inventory (hosts.yaml): the artifacts its spec.artifacts and versions name")
	fl.StringVar(&f.manifest, "manifest", "", "artifact manifest file (entries with url or path)")
	fl.StringVar(&f.dir, "dir", "", "artifact bundle: a directory holding manifest.yaml")
	fl.StringVar(&f.bundle, "bundle", "", "air-gap bundle that `k4t artifact export` wrote (the tar or its unpacked dir)")
	fl.StringVar(&f.k8sVersion, "kubernetes-version", artifacts.DefaultK8sVersion, "without --manifest/--dir: the Kubernetes release set under "+artifacts.DefaultCacheRoot())
	fl.StringVar(&f.etcdVersion, "etcd-version", artifacts.DefaultEtcdVersion, "without --manifest/--dir: the etcd release set")
	fl.StringVar(&f.cacheDir, "download-dir", "", "where url artifacts are downloaded (default /var/cache/k4t/downloads or ~/.k4t/cache)")
}

func (f *artifactFlags) store(stderr io.Writer) (*artifacts.Store, error) {
	set := 0
	for _, v := range []string{f.manifest, f.dir, f.bundle, f.inventory} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return nil, usagef("use one of -f, --manifest, --dir and --bundle")
	}
	if f.inventory != "" {
		c, err := loadInventory(f.inventory, stderr)
		if err != nil {
			return nil, err
		}
		return artifacts.ForCluster(c)
	}
	dir := f.dir
	if f.bundle != "" {
		d, err := artifacts.BundleDir(f.bundle, cmp.Or(f.cacheDir, artifacts.DefaultDownloadDir()))
		if err != nil {
			return nil, err
		}
		dir = d
	}
	m, err := artifacts.ForManifestOrDir(f.manifest, dir, f.k8sVersion, f.etcdVersion)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return artifacts.NewStore(m, f.cacheDir), nil
}

// artifactRow is one line of list/verify output (and one JSON object with -o json).
type artifactRow struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
	Status  string `json:"status"`
	Local   string `json:"local,omitempty"`
	Error   string `json:"error,omitempty"`
}

func init() {
	register(func(g *globalFlags) *cobra.Command {
		root := &cobra.Command{
			Use:   "artifact",
			Short: "List and verify the binaries and images k4t installs",
			Long: "Artifacts come from a manifest (--manifest FILE), a bundle (--dir DIR with manifest.yaml), " +
				"or by default from what hack/build-artifacts/build.sh built under " + artifacts.DefaultCacheRoot() + ".",
		}
		var lf artifactFlags
		list := &cobra.Command{
			Use:   "list",
			Short: "List the artifacts of the manifest (status: present, missing, or remote)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := lf.store(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				m := s.Manifest()
				rows := make([]artifactRow, 0, len(m.Artifacts))
				for i := range m.Artifacts {
					a := &m.Artifacts[i]
					r := newRow(a)
					switch p := m.LocalPath(a); {
					case a.URL != "":
						r.Status = "remote"
					case fileExists(p):
						r.Status, r.Local = "present", p
					default:
						r.Status = "missing"
					}
					rows = append(rows, r)
				}
				return printRows(cmd.OutOrStdout(), g.Output(), rows)
			},
		}
		lf.bind(list)
		var vf artifactFlags
		verify := &cobra.Command{
			Use:   "verify",
			Short: "Check every artifact's sha256 (downloading url artifacts once); exit 1 on any failure",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := vf.store(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				m := s.Manifest()
				rows := make([]artifactRow, 0, len(m.Artifacts))
				failed := 0
				for i := range m.Artifacts {
					a := &m.Artifacts[i]
					r := newRow(a)
					p, _, err := s.Resolve(cmd.Context(), a.Name)
					if err != nil {
						failed++
						r.Status, r.Error = "FAIL", err.Error()
					} else {
						r.Status, r.Local = "OK", p
					}
					rows = append(rows, r)
				}
				if err := printRows(cmd.OutOrStdout(), g.Output(), rows); err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d artifacts failed verification (see FAIL lines above)", failed, len(rows))
				}
				if len(rows) == 0 {
					return fmt.Errorf("the manifest lists no artifacts: build them with hack/build-artifacts/build.sh, or pass --manifest/--dir")
				}
				return nil
			},
		}
		vf.bind(verify)
		root.AddCommand(list, verify, exportCmd(g))
		return root
	})
}

func newRow(a *artifacts.Artifact) artifactRow {
	return artifactRow{Name: a.Name, Version: a.Version, Kind: string(a.Kind), Source: a.Source(), SHA256: a.SHA256}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func printRows(w io.Writer, format string, rows []artifactRow) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tKIND\tSTATUS\tSHA256\tSOURCE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Kind, r.Status, r.SHA256, r.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "FAIL %s: %s\n", r.Name, r.Error)
		}
	}
	return nil
}

// exportCmd writes an air-gap bundle of an inventory's artifacts. The
// bundle's path is an argument: -o is k4t's output format everywhere.
func exportCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	c := &cobra.Command{
		Use:   "export -f hosts.yaml BUNDLE.tar",
		Short: "Write every binary and image the inventory needs, checked, into one tar for hosts without internet",
		Long: "Fetches (or takes from the build cache) every artifact of the inventory's versions, checks each " +
			"against its published or pinned sha256, and writes BUNDLE.tar: manifest.yaml, SHA256SUMS and the files. " +
			"Where nothing can be downloaded, set spec.artifacts.bundle to the tar (or the directory it is unpacked in).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, st, err := inventoryAndState(cmd, g, hf)
			if err != nil {
				return err
			}
			pins, err := artifacts.LoadPins(st.ArtifactPins())
			if err != nil {
				return err
			}
			store, err := artifacts.ForCluster(c, artifacts.WithPins(pins))
			if err != nil {
				return err
			}
			start := time.Now()
			tmp := args[0] + ".partial"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			sum, err := artifacts.Export(cmd.Context(), store, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, args[0])
			}
			if err != nil {
				os.Remove(tmp)
				return fmt.Errorf("artifact export: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d artifacts, %.1f MB, in %s\n", args[0], sum.Artifacts, float64(sum.Bytes)/1e6, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVarP(&hf.file, "file", "f", "", "inventory (hosts.yaml)")
	_ = c.MarkFlagRequired("file")
	return c
}
