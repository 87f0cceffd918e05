package state

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Copies of the state dir for other hosts (k4t state backup): a gzipped tar
// of the tree, sealed with age to the cluster's own X25519 recipient. The
// identity that opens it is created once, kept in the state dir's secrets,
// and shown to the user to keep elsewhere: a copy is no use to whoever
// holds a node, and a lost bastion is rebuilt with the identity.

// notArchived are the parts of the state dir a copy leaves out: logs grow
// without bound, etcd snapshots are large and have their own schedule on
// the members, and the backup's own record changes with every copy. Nor do
// lock files, temporary files, scheduled jobs' last results (*.status.json)
// or the bastion's own job files (a new bastion installs its schedules
// again): a scheduled run that changed nothing else must not make the next
// copy new.
var notArchived = []string{"logs", "backups", BackupRecord, "certs-job.sh", "state-backup-job.sh", "state-backup-schedule.json"}

// archived says whether the file at rel (relative to the state dir) goes
// into a copy.
func archived(rel string) bool {
	top, _, _ := strings.Cut(rel, string(filepath.Separator))
	base := filepath.Base(rel)
	return !slices.Contains(notArchived, top) && !strings.HasSuffix(rel, ".lock") && !strings.HasSuffix(rel, ".status.json") &&
		!strings.HasSuffix(rel, ".tmp") && !strings.Contains(base, ".tmp-")
}

// BackupRecord is the state dir's record of the copies made (per target:
// the content hash and the time of the last copy).
const BackupRecord = "state-backup.json"

// BackupIdentityFile holds the age identity that opens the copies.
const BackupIdentityFile = "secrets/state-backup-identity.txt"

// Archive writes the state dir as a gzipped tar (files sorted, times and
// owners zeroed so equal trees give equal bytes) and returns it with the
// sha256 of the content, which decides whether a copy is new.
func (d *Dir) Archive() ([]byte, string, error) {
	var files []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.Root, p)
		if rel == "." {
			return nil
		}
		if !archived(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	slices.Sort(files)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	sum := sha256.New()
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(d.Root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the walk (another k4t run replaced it)
		}
		if err != nil {
			return nil, "", err
		}
		fi, err := os.Stat(filepath.Join(d.Root, rel))
		if err != nil {
			return nil, "", err
		}
		fmt.Fprintf(sum, "%s %o %d\n", rel, fi.Mode().Perm(), len(b))
		sum.Write(b)
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), Size: int64(len(b)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := gz.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), hex.EncodeToString(sum.Sum(nil)), nil
}

// Extract unpacks an archive into the state dir, file by file with the
// modes it holds (every directory 0700). Paths that leave the dir are refused.
func (d *Dir) Extract(archive []byte) (int, error) {
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return 0, fmt.Errorf("not a state dir copy: %w", err)
	}
	tr := tar.NewReader(gz)
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		rel := filepath.FromSlash(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
			return n, fmt.Errorf("refusing %q in the copy: not a plain file inside the state dir", hdr.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return n, err
		}
		if err := d.WriteFile(filepath.Join(d.Root, rel), b, fs.FileMode(hdr.Mode).Perm()); err != nil {
			return n, err
		}
		n++
	}
}

// BackupRecipient is the recipient copies are sealed to, creating the
// identity on first use; created says it was just made (so the caller
// shows it once).
func (d *Dir) BackupRecipient() (r *age.X25519Recipient, identity string, created bool, err error) {
	path := d.Path(BackupIdentityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, "", false, err
		}
		text := "# k4t state backup identity of cluster " + filepath.Base(d.Root) + ": it opens the copies of the state dir.\n" +
			"# Keep it apart from the bastion; `k4t state restore --identity FILE` needs it.\n" + id.String() + "\n"
		if err := d.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, "", false, err
		}
		return id.Recipient(), text, true, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) != 1 {
		return nil, "", false, fmt.Errorf("%s: not one age identity (%v)", path, err)
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, "", false, fmt.Errorf("%s: not an X25519 identity", path)
	}
	return x.Recipient(), string(b), false, nil
}

// Seal encrypts data to r.
func Seal(data []byte, r age.Recipient) ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Unseal decrypts data with the identities in identityFile's text.
func Unseal(data []byte, identityFile []byte) ([]byte, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(identityFile))
	if err != nil {
		return nil, fmt.Errorf("reading the identity: %w", err)
	}
	r, err := age.Decrypt(bytes.NewReader(data), ids...)
	if err != nil {
		return nil, fmt.Errorf("decrypting the copy (is it the identity of this cluster?): %w", err)
	}
	return io.ReadAll(r)
}
