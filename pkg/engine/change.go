package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"k4t.io/k4t/pkg/transport"
)

// Kind of a change.
type Kind string

const (
	KindFile    Kind = "file"
	KindPackage Kind = "package"
	KindUnit    Kind = "unit"
	KindCommand Kind = "command"
)

// Change is one thing apply would do on one host. Apply is the only way it
// touches the host; plan prints it and touches nothing.
type Change struct {
	Host  string
	Phase string
	Kind  Kind
	// Desc is one line for people.
	Desc string
	// Key identifies the change in the journal (e.g. "file:/etc/etcd/etcd.env",
	// "restart:etcd"). Changes whose effect a later plan cannot see (restarts)
	// are journaled as intents before they run, so a killed run re-plans them.
	Key string
	// For files: old and new sha256 and a unified diff (empty for secrets
	// and binaries).
	OldSHA, NewSHA string
	Diff           string
	// File is set for file changes: what Apply writes (a transaction may
	// write it elsewhere first).
	File *transport.File
	// Secret: the file holds a secret; no diff, no copy under rendered/.
	Secret bool
	// Journaled: write an intent before Apply and done after.
	Journaled bool
	// Apply performs the change.
	Apply func(ctx context.Context, h transport.Host) error
}

func (c *Change) String() string { return fmt.Sprintf("%s %s: %s", c.Host, c.Kind, c.Desc) }

// FileOpts tune FileChange.
type FileOpts struct {
	// Secret: no diff and no copy under the state dir's rendered/.
	Secret bool
	// Binary: no diff.
	Binary bool
}

// FileChange compares f with the host's copy and returns the change that
// writes it, or nil when the host already has it (sha256, mode and owner).
func FileChange(ctx context.Context, hc *HostCtx, phase string, f transport.File, o FileOpts) (*Change, error) {
	cs, err := FileChanges(ctx, hc, phase, PlannedFile{f, o})
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// PlannedFile is a file to plan and how.
type PlannedFile struct {
	File transport.File
	Opts FileOpts
}

// FileChanges is FileChange of several files, with one round trip to the
// host for all of them; a nil entry is a file the host already has.
func FileChanges(ctx context.Context, hc *HostCtx, phase string, files ...PlannedFile) ([]*Change, error) {
	paths := make([]string, len(files))
	for i := range files {
		f := &files[i].File
		if f.Mode == 0 {
			f.Mode = 0o644
		}
		if f.Owner == "" {
			f.Owner = "root:root"
		}
		if f.SHA256 == "" && f.Content != nil {
			s := sha256.Sum256(f.Content)
			f.SHA256 = hex.EncodeToString(s[:])
		}
		if f.SHA256 == "" {
			return nil, fmt.Errorf("file %s: no content and no sha256", f.Path)
		}
		paths[i] = f.Path
	}
	fis, err := hc.Conn.StatMany(ctx, paths)
	if err != nil {
		return nil, err
	}
	out := make([]*Change, len(files))
	for i, f := range files {
		if out[i], err = fileChange(ctx, hc, phase, f.File, f.Opts, fis[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fileChange compares f with fi, the host's copy.
func fileChange(ctx context.Context, hc *HostCtx, phase string, f transport.File, o FileOpts, fi transport.FileInfo) (*Change, error) {
	var err error
	if fi.Exists && fi.SHA256 == f.SHA256 && fi.Mode.Perm() == f.Mode.Perm() && fi.Owner == f.Owner {
		return nil, nil
	}
	c := &Change{Host: hc.Name(), Phase: phase, Kind: KindFile, Key: "file:" + f.Path, OldSHA: fi.SHA256, NewSHA: f.SHA256, Secret: o.Secret}
	switch {
	case !fi.Exists:
		c.Desc = fmt.Sprintf("create %s (%s %s)", f.Path, f.Mode.Perm(), f.Owner)
	case fi.SHA256 == f.SHA256:
		c.Desc = fmt.Sprintf("fix %s mode/owner %s %s -> %s %s", f.Path, fi.Mode.Perm(), fi.Owner, f.Mode.Perm(), f.Owner)
	default:
		c.Desc = fmt.Sprintf("update %s", f.Path)
	}
	if !o.Secret && !o.Binary && f.Content != nil && utf8.Valid(f.Content) && fi.SHA256 != f.SHA256 {
		var old []byte
		if fi.Exists {
			old, err = hc.Conn.Get(ctx, f.Path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("read %s: %w", f.Path, err)
			}
		}
		c.Diff = unifiedDiff(f.Path, old, f.Content)
	}
	file := f
	c.File = &file
	c.Apply = func(ctx context.Context, h transport.Host) error {
		_, err := h.Put(ctx, file)
		return err
	}
	if !o.Secret && f.Content != nil && hc.Run != nil && hc.Run.State != nil {
		content := f.Content
		put := c.Apply
		c.Apply = func(ctx context.Context, h transport.Host) error {
			if err := put(ctx, h); err != nil {
				return err
			}
			// Keep what was written, so the state dir shows every host's files.
			return hc.Run.State.WriteFile(hc.Run.State.Rendered(hc.Name(), file.Path), content, 0o600)
		}
	}
	return c, nil
}

func unifiedDiff(path string, old, new []byte) string {
	if !utf8.Valid(old) || bytes.IndexByte(old, 0) >= 0 {
		return "(binary file replaced)\n"
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(old)),
		B:        difflib.SplitLines(string(new)),
		FromFile: path + " (host)",
		ToFile:   path + " (k4t)",
		Context:  2,
	})
	if err != nil {
		return ""
	}
	return d
}

// CommandChange is a command apply runs; plan shows it.
func CommandChange(hc *HostCtx, phase, desc, cmd string) *Change {
	return &Change{Host: hc.Name(), Phase: phase, Kind: KindCommand, Desc: desc, Key: "cmd:" + firstWord(desc),
		Apply: func(ctx context.Context, h transport.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: cmd})
			return err
		}}
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

// Changes collects one host's changes while a phase plans them.
type Changes struct {
	hc    *HostCtx
	phase string
	List  []*Change
}

// NewChanges starts an empty list for hc in phase.
func NewChanges(hc *HostCtx, phase string) *Changes { return &Changes{hc: hc, phase: phase} }

// File plans f (see FileChange) and reports whether the host's copy differs.
func (cs *Changes) File(ctx context.Context, f transport.File, o FileOpts) (bool, error) {
	c, err := FileChange(ctx, cs.hc, cs.phase, f, o)
	if c != nil {
		cs.List = append(cs.List, c)
	}
	return c != nil, err
}

// Files plans several files as File does, with one round trip to the host,
// and reports which differ.
func (cs *Changes) Files(ctx context.Context, files ...PlannedFile) ([]bool, error) {
	list, err := FileChanges(ctx, cs.hc, cs.phase, files...)
	if err != nil {
		return nil, err
	}
	changed := make([]bool, len(list))
	for i, c := range list {
		changed[i] = c != nil
		cs.Add(c)
	}
	return changed, nil
}

// Add appends changes, skipping nils.
func (cs *Changes) Add(changes ...*Change) {
	for _, c := range changes {
		if c != nil {
			cs.List = append(cs.List, c)
		}
	}
}
