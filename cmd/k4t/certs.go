package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/state"
)

func init() {
	register(func(g *globalFlags) *cobra.Command {
		c := &cobra.Command{Use: "certs", Short: "Inspect and renew the cluster's certificates"}
		var file string
		check := &cobra.Command{
			Use:   "check-expiration -f hosts.yaml",
			Short: "List every certificate with its CA, NotAfter and time left",
			Long:  "Reads the certificates in the cluster's state dir (pki/). Missing or unreadable files are reported as errors, not skipped.",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cl, err := loadInventory(file, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				st, err := state.Open(g.StateRoot(), cl.Metadata.Name)
				if err != nil {
					return err
				}
				rows, err := certs.CheckDir(st.PKI(), time.Now())
				if err != nil {
					return err
				}
				for i := range rows {
					if rows[i].Host == "" {
						rows[i].Host = "bastion"
					}
				}
				if err := printExpiry(cmd, g.Output(), rows); err != nil {
					return err
				}
				for _, r := range rows {
					if r.Err != "" {
						return fmt.Errorf("%s: %s: %s", r.Host, r.Name, r.Err)
					}
				}
				return nil
			},
		}
		check.Flags().StringVarP(&file, "file", "f", "", "inventory (hosts.yaml)")
		_ = check.MarkFlagRequired("file")
		c.AddCommand(check)
		return c
	})
}

func printExpiry(cmd *cobra.Command, output string, rows []certs.Expiry) error {
	if output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		for _, r := range rows {
			if err := enc.Encode(struct {
				Host     string    `json:"host"`
				Name     string    `json:"certificate"`
				CA       string    `json:"ca,omitempty"`
				IsCA     bool      `json:"isCA"`
				NotAfter time.Time `json:"notAfter"`
				LeftS    float64   `json:"left_s"`
				Err      string    `json:"error,omitempty"`
			}{r.Host, r.Name, r.CA, r.IsCA, r.NotAfter, r.Left.Seconds(), r.Err}); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tCERTIFICATE\tCA\tEXPIRES\tLEFT\t")
	for _, r := range rows {
		ca := r.CA
		if r.IsCA {
			ca = "(CA)"
		}
		if r.Err != "" {
			fmt.Fprintf(w, "%s\t%s\t%s\tERROR: %s\t\t\n", r.Host, r.Name, ca, r.Err)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\n", r.Host, r.Name, ca, r.NotAfter.UTC().Format(time.RFC3339), humanDuration(r.Left))
	}
	return w.Flush()
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "EXPIRED"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	default:
		return d.Round(time.Minute).String()
	}
}
